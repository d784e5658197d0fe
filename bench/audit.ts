import { LocalKeyring } from "../shared/crypto/local-keyring.ts";
import { readRuntimeConfig } from "../shared/runtime/config.ts";
import { createRuntime, type Runtime } from "../shared/runtime/container.ts";
import { randomKek, startStore } from "../testing/harness.ts";
import { countDynamoCalls, discardingLogger, formatNumber, report } from "./support.ts";

const WRITER_COUNTS = [1, 8, 32] as const;
const MEASURE_MS = 3000;
/** Callers sharing one instance: its appends to one chain are queued, so this shows that ceiling. */
const CALLERS_ON_ONE_INSTANCE = 32;

const event = (scope: string, writer: number, n: number) => ({
  tenantId: scope,
  action: "secret.read" as const,
  outcome: "success" as const,
  actor: `writer-${writer}`,
  role: "runner" as const,
  requestId: `bench-${writer}-${n}`,
  reason: "benchmark",
  secretName: "api-key",
  version: 1,
  time: new Date().toISOString(),
});

/** Each writer appends back to back until the time is up; returns how many appends landed. */
async function appendFor(runtimes: readonly Runtime[], callersEach: number, scope: string): Promise<number> {
  const deadline = performance.now() + MEASURE_MS;
  let appended = 0;
  await Promise.all(
    runtimes.flatMap((runtime, i) =>
      Array.from({ length: callersEach }, async (_, caller) => {
        const writer = i * callersEach + caller;
        for (let n = 0; performance.now() < deadline; n += 1) {
          await runtime.chainWriter.append(event(scope, writer, n));
          appended += 1;
        }
      }),
    ),
  );
  return appended;
}

/**
 * Audit chain appends per second on one tenant's chain, with 1, 8 and 32 writers, each writer its own
 * service instance (its own in-memory head, as separate Lambda instances have), all on one dynalite
 * table; then the verify walk's speed. Conflicts show up as PutItems beyond one per append, each
 * followed by a Query for the new head.
 */
export async function measureAuditChain(): Promise<void> {
  const kek = randomKek();
  const store = await startStore();
  const counter = countDynamoCalls(store.table);
  const logger = discardingLogger();
  const config = readRuntimeConfig({});
  const instance = () =>
    createRuntime({
      keyring: new LocalKeyring({ active: kek, previous: [] }),
      table: store.table,
      config,
      logger,
    });
  try {
    report.section(
      `5. Audit chain: appends on one tenant's chain (${MEASURE_MS / 1000} s per row, in-memory dynalite)`,
    );
    report.note("each writer is a separate service instance appending back to back; all share one table");
    let largest = { scope: "", records: 0 };
    const rows: [string, Runtime[], number][] = [
      ...WRITER_COUNTS.map((writers): [string, Runtime[], number] => [
        `${writers} writer${writers === 1 ? "" : "s"}`,
        Array.from({ length: writers }, instance),
        1,
      ]),
      [`1 instance, ${CALLERS_ON_ONE_INSTANCE} concurrent callers`, [instance()], CALLERS_ON_ONE_INSTANCE],
    ];
    for (const [label, runtimes, callersEach] of rows) {
      const scope = `bench-${label.replace(/[^a-z0-9]+/g, "-")}`;
      // One append per instance first, so each has read the head before timing starts.
      for (const runtime of runtimes) await runtime.chainWriter.append(event(scope, -1, 0));
      counter.reset();
      const started = performance.now();
      const appended = await appendFor(runtimes, callersEach, scope);
      const seconds = (performance.now() - started) / 1000;
      const puts = counter.counts.get("PutItem") ?? 0;
      const queries = counter.counts.get("Query") ?? 0;
      report.figure(
        `${label}: appends/s`,
        formatNumber(appended / seconds),
        `(${formatNumber(puts / appended, 2)} PutItem + ${formatNumber(queries / appended, 2)} Query per append)`,
      );
      const total = appended + runtimes.length;
      if (total > largest.records) largest = { scope, records: total };
    }

    report.section("6. Audit chain: verify (walk from record 1: hash, MAC and link of every record)");
    const verifier = instance();
    const started = performance.now();
    const result = await verifier.chainVerifier.verify(largest.scope);
    const seconds = (performance.now() - started) / 1000;
    if (!result.intact)
      throw new Error(`the benchmark chain did not verify: ${JSON.stringify(result.break)}`);
    report.figure("records verified", formatNumber(result.records));
    report.figure("verify speed", formatNumber(result.records / seconds), "records/s");
  } finally {
    await store.dynamo.close();
  }
}
