/**
 * `npm run bench`: prints the figures the design is held to. Everything runs on loopback with
 * in-memory dynalite; see each measurement's file for how it is taken.
 */
import { cpus } from "node:os";
import { measureSealOpen } from "./crypto.ts";
import { measureDynamoCallsPerRead } from "./dynamo-calls.ts";
import { measureHttpReads } from "./http.ts";
import { measureKmsCallsPerThousandReads } from "./kms.ts";
import { formatNumber, report, startStack } from "./support.ts";

function printEnvironment(): void {
  const cores = cpus();
  report.section("environment");
  report.figure("Node", process.version);
  report.figure("CPUs", String(cores.length), cores[0]?.model.trim() ?? "");
}

async function main(): Promise<void> {
  // The SDK would otherwise probe the instance metadata address for a region and credentials.
  process.env.AWS_EC2_METADATA_DISABLED ??= "true";
  // The SDK's notice that it will drop Node 20 in 2027 would land in the middle of the table.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const started = performance.now();
  console.log("Strongbox benchmark");
  printEnvironment();

  measureSealOpen();

  const stack = await startStack();
  try {
    await measureHttpReads(stack);
    await measureKmsCallsPerThousandReads();
    await measureDynamoCallsPerRead(stack);
  } finally {
    await stack.close();
  }

  report.section("run");
  report.figure("total benchmark time", formatNumber((performance.now() - started) / 1000, 1), "s");
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error("benchmark failed:", error);
    process.exit(1);
  },
);
