/**
 * `npm run bench [-- section ...]`: prints the figures the design is held to. Everything runs on
 * loopback with in-memory dynalite; see each measurement's file for how it is taken. With section names
 * (see SECTIONS) only those run, so one figure can be re-measured without waiting for the rest.
 */
import { cpus } from "node:os";
import { measureAuditChain } from "./audit.ts";
import { measureClient } from "./client.ts";
import { measureColdStart } from "./coldstart.ts";
import { measureSealOpen } from "./crypto.ts";
import { measureDynamoCallsPerRead } from "./dynamo-calls.ts";
import { measureFleet } from "./fleet.ts";
import { measureHttpReads } from "./http.ts";
import { measureIamReads } from "./iam.ts";
import { measureKmsCallsPerThousandReads } from "./kms.ts";
import { measureRotation } from "./rotation.ts";
import { formatNumber, report, type Stack, startStack } from "./support.ts";

interface Section {
  /** Sections that measure the shared HTTP stack get it passed in; the others build what they need. */
  run(stack: () => Promise<Stack>): Promise<void> | void;
}

const SECTIONS: Record<string, Section> = {
  crypto: { run: () => measureSealOpen() },
  http: { run: async (stack) => measureHttpReads(await stack()) },
  kms: { run: () => measureKmsCallsPerThousandReads() },
  dynamo: { run: async (stack) => measureDynamoCallsPerRead(await stack()) },
  audit: { run: () => measureAuditChain() },
  rotation: { run: () => measureRotation() },
  coldstart: { run: () => measureColdStart() },
  iam: { run: () => measureIamReads() },
  fleet: { run: () => measureFleet() },
  client: { run: () => measureClient() },
};

function printEnvironment(): void {
  const cores = cpus();
  report.section("environment");
  report.figure("Node", process.version);
  report.figure("CPUs", String(cores.length), cores[0]?.model.trim() ?? "");
}

function selectedSections(args: readonly string[]): string[] {
  const unknown = args.filter((name) => !(name in SECTIONS));
  if (unknown.length > 0) {
    throw new Error(
      `unknown bench section(s) ${unknown.join(", ")}; known: ${Object.keys(SECTIONS).join(", ")}`,
    );
  }
  return args.length === 0 ? Object.keys(SECTIONS) : [...args];
}

async function main(): Promise<void> {
  // The SDK would otherwise probe the instance metadata address for a region and credentials.
  process.env.AWS_EC2_METADATA_DISABLED ??= "true";
  // The SDK's notice that it will drop Node 20 in 2027 would land in the middle of the table.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const names = selectedSections(process.argv.slice(2));
  const started = performance.now();
  console.log("Strongbox benchmark");
  printEnvironment();

  let shared: Promise<Stack> | undefined;
  const stack = () => {
    shared ??= startStack();
    return shared;
  };
  try {
    for (const name of names) await SECTIONS[name]?.run(stack);
  } finally {
    if (shared !== undefined) await (await shared).close();
  }

  report.section("run");
  report.figure("sections", names.join(", "));
  report.figure("total benchmark time", formatNumber((performance.now() - started) / 1000, 1), "s");
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error("benchmark failed:", error);
    process.exit(1);
  },
);
