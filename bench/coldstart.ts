import { statSync } from "node:fs";
import { FUNCTION_ENTRIES, type FunctionName } from "../infra/bundling.ts";
import { bootstrapToken } from "../shared/crypto/tokens.ts";
import { type Bundle, buildBundle, invokeBundle, sdkImportMs } from "../testing/bundles.ts";
import { kmsCallEvent, sqsBatch } from "../testing/cloudtrail.ts";
import { httpApiEvent } from "../testing/http-api-event.ts";
import { startLoopbackStage } from "../testing/iam/loopback-stage.ts";
import { scheduledEvent } from "../testing/scheduled-event.ts";
import { formatNumber, median, report, verdict } from "./support.ts";

const RUNS = 7;
const TARGET_COLD_START_MS = 150;
const TARGET_BUNDLE_BYTES = 1024 * 1024;

/**
 * Each function's bundle as CDK builds it (infra/bundling.ts, the SDK bundled in), and
 * the API's cold start: a fresh Node process importing the bundle (which builds the runtime, reads the
 * bootstrap secret and checks the KEK) and answering its first authenticated secret read. Each function
 * gets its dev template's environment; loopback dynalite, KMS and Secrets Manager endpoints stand in for
 * AWS, reached straight (not through the IAM proxy), so network time is near zero and the figure is the
 * CPU cost of start-up; Node's own boot before the import is shown apart.
 */
export async function measureColdStart(): Promise<void> {
  report.section("coldstart: bundles as deployed (the SDK bundled in)");
  const bundles = [];
  for (const name of Object.keys(FUNCTION_ENTRIES) as FunctionName[]) {
    const bundle = await buildBundle(name);
    bundles.push({ name, bundle });
    const mapBytes = statSync(`${bundle.file}.map`).size;
    report.figure(
      `${name} bundle index.mjs, whole`,
      formatNumber(bundle.bytes / 1024, 1),
      `KiB (map ${formatNumber(mapBytes / 1024, 0)} KiB) ${verdict(bundle.bytes < TARGET_BUNDLE_BYTES)} (< 1 MiB)`,
    );
    report.figure(
      `${name} bundle without the SDK`,
      formatNumber(bundle.bytesWithoutSdk / 1024, 1),
      `KiB ${verdict(bundle.bytesWithoutSdk < TARGET_BUNDLE_BYTES)} (< 1 MiB)`,
    );
  }

  const api = bundles.find((b) => b.name === "api")?.bundle;
  if (api === undefined) return;
  const stage = await startLoopbackStage("dev", { direct: true });
  try {
    const token = bootstrapToken(stage.secretValue(stage.shape.secrets[0]?.arn ?? ""))?.token ?? "";
    const quiet = { POWERTOOLS_LOG_LEVEL: "WARN" };
    const env = stage.functionEnv("api", quiet);
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const setup = await invokeBundle(api, env, [
      httpApiEvent("POST", "/v1/tenants", { headers, body: '{"tenantId":"bench"}' }),
      httpApiEvent("PUT", "/v1/tenants/bench/secrets/api-key", { headers, body: '{"value":"bench-value"}' }),
    ]);
    if (setup.results.some((r) => r.statusCode >= 300)) throw new Error("cold-start setup requests failed");

    const read = httpApiEvent("GET", "/v1/tenants/bench/secrets/api-key", {
      headers: { ...headers, "x-audit-reason": "bench" },
    });
    // Each run a fresh process: import the bundle, then answer one event; the answer must be `ok`.
    const coldRuns = async (
      bundle: Bundle,
      event: unknown,
      ok: (result: any) => boolean,
      extra: Record<string, string>,
    ) => {
      const runs = [];
      for (let n = 0; n < RUNS; n++) {
        const started = performance.now();
        const run = await invokeBundle(bundle, extra, [event]);
        const wallMs = performance.now() - started;
        if (!ok(run.results[0]))
          throw new Error(`cold run answered ${JSON.stringify(run.results[0]).slice(0, 200)}`);
        runs.push({ ...run, wallMs });
      }
      return runs;
    };
    const coldReads = (bundle: Bundle) => coldRuns(bundle, read, (r) => r?.statusCode === 200, env);

    const runs = await coldReads(api);
    const first = median(runs.map((r) => r.firstMs));
    const sdk = median(await sdkImportMs(RUNS));
    report.section(`coldstart: API function as deployed, median of ${RUNS} fresh processes`);
    report.figure(
      "import (runtime built, secret read, KEK checked)",
      formatNumber(median(runs.map((r) => r.importMs)), 1),
      "ms",
    );
    report.figure(
      "import + first secret read",
      formatNumber(first, 1),
      `ms ${verdict(first < TARGET_COLD_START_MS)} (< ${TARGET_COLD_START_MS} ms)`,
    );
    report.figure(
      "first-read range",
      `${formatNumber(Math.min(...runs.map((r) => r.firstMs)), 1)}–${formatNumber(Math.max(...runs.map((r) => r.firstMs)), 1)}`,
      "ms",
    );
    report.figure("whole process, spawn to exit", formatNumber(median(runs.map((r) => r.wallMs)), 1), "ms");
    report.figure("SDK clients import alone, fresh process", formatNumber(sdk, 1), "ms");

    // Not what is deployed: the same function taking the runtime's SDK, for the trade-off's other side.
    const sdkExternal = await buildBundle("api", { sdkExternal: true });
    const externalRuns = await coldReads(sdkExternal);
    const externalFirst = median(externalRuns.map((r) => r.firstMs));
    report.section("coldstart: comparison, the API bundle with the SDK left to the runtime (not deployed)");
    report.figure("bundle index.mjs", formatNumber(sdkExternal.bytes / 1024, 1), "KiB");
    report.figure(
      "import + first secret read",
      formatNumber(externalFirst, 1),
      `ms ${verdict(externalFirst < TARGET_COLD_START_MS)} (< ${TARGET_COLD_START_MS} ms)`,
    );

    const others = [
      {
        name: "rotation",
        event: scheduledEvent("arn:aws:events:us-east-1:111111111111:rule/bench"),
        ok: (r: any) => r?.outOfTime === false,
        extra: stage.functionEnv("rotation", quiet),
      },
      {
        name: "audit",
        event: sqsBatch(
          JSON.stringify(
            kmsCallEvent({
              eventName: "Decrypt",
              keyArn: stage.kms.keyArn("alias/strongbox-dev"),
              caller: { user: "ops" },
              tenant: "bench",
            }),
          ),
        ),
        ok: (r: any) => Array.isArray(r?.batchItemFailures) && r.batchItemFailures.length === 0,
        extra: stage.functionEnv("audit", quiet),
      },
    ] as const;
    for (const { name, event, ok, extra } of others) {
      const bundle = bundles.find((b) => b.name === name)?.bundle;
      if (bundle === undefined) continue;
      const runs = await coldRuns(bundle, event, ok, extra);
      const firstMs = median(runs.map((r) => r.firstMs));
      report.section(`coldstart: ${name} function as deployed, median of ${RUNS} fresh processes`);
      report.figure(
        "import (runtime built, KEK checked)",
        formatNumber(median(runs.map((r) => r.importMs)), 1),
        "ms",
      );
      report.figure(
        `import + first ${name === "audit" ? "SQS batch" : "scheduled run"}`,
        formatNumber(firstMs, 1),
        `ms ${verdict(firstMs < TARGET_COLD_START_MS)} (< ${TARGET_COLD_START_MS} ms)`,
      );
    }
  } finally {
    await stage.close();
  }
}
