import { runLoad } from "./load.ts";
import { countDynamoCalls, formatNumber, report, type Stack, verdict } from "./support.ts";

const READS = 1000;
const WARMUP_REQUESTS = 100;
/** Under load, audit records of concurrent reads share one group-committed write; alone, each read pays its own. */
const CONCURRENCY_LEVELS = [1, 32] as const;
const TARGET_CALLS_PER_READ = 2;

/** DynamoDB requests per warm read, by operation; the bare route is counted too, as a check of the counter. */
export async function measureDynamoCallsPerRead(stack: Stack): Promise<void> {
  const counter = countDynamoCalls(stack.table);
  const countReads = async (read: Stack["serviceRead"], concurrency: number) => {
    const result = await runLoad(
      {
        url: read.url,
        headers: read.headers,
        concurrency,
        warmupRequests: WARMUP_REQUESTS,
        measure: { requests: READS },
      },
      () => counter.reset(),
    );
    if (result.failures > 0)
      throw new Error(`${result.failures} counted reads failed, e.g. ${result.failureSample}`);
    return {
      perRead: counter.total() / result.requests,
      byOperation: new Map(counter.counts),
      reads: result.requests,
    };
  };

  report.section(
    `4. DynamoDB requests per warm read (${formatNumber(READS)} reads over HTTP, counted on the wire)`,
  );
  for (const concurrency of CONCURRENCY_LEVELS) {
    const service = await countReads(stack.serviceRead, concurrency);
    const label = `service, ${concurrency} connection${concurrency === 1 ? "" : "s"}`;
    for (const [operation, count] of [...service.byOperation].sort(([a], [b]) => a.localeCompare(b))) {
      report.figure(`${label}: ${operation}`, formatNumber(count / service.reads, 2), "calls/read");
    }
    report.figure(
      `${label}: total (target ≤ ${TARGET_CALLS_PER_READ})`,
      formatNumber(service.perRead, 2),
      `calls/read, ${verdict(service.perRead <= TARGET_CALLS_PER_READ)}`,
    );
  }
  const bare = await countReads(stack.bareRead, 1);
  report.figure("bare route: total (counter check, expect 1)", formatNumber(bare.perRead, 2), "calls/read");
}
