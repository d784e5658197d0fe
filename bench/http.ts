import { type LoadResult, runLoad } from "./load.ts";
import { formatNumber, median, mib, report, type Stack, verdict } from "./support.ts";

const CONCURRENCY = 32;
const WARMUP_REQUESTS = 300;
const MEASURE_MS = 2000;
/**
 * Throughput keeps climbing for the first several seconds of load (JIT), so a single run of each route
 * favours whichever goes second. The routes alternate instead, the first round is discarded, and each
 * route's median round is reported. The ratio is the median of the per-round ratios, since the two
 * runs of a round are adjacent in time and so see the same machine.
 */
const DISCARDED_ROUNDS = 1;
const REPORTED_ROUNDS = 5;
/** The service must keep at least this share of the bare route's throughput. */
const TARGET_SHARE = 0.45;

interface Run {
  readonly result: LoadResult;
  /** This process's event-loop utilisation while measured: near 1 means the server was the bottleneck. */
  readonly serverLoopUtilisation: number;
}

async function measureRun(read: Stack["serviceRead"], what: string): Promise<Run> {
  let before = performance.eventLoopUtilization();
  const result = await runLoad(
    {
      url: read.url,
      headers: read.headers,
      concurrency: CONCURRENCY,
      warmupRequests: WARMUP_REQUESTS,
      measure: { durationMs: MEASURE_MS },
    },
    () => {
      before = performance.eventLoopUtilization();
    },
  );
  const serverLoopUtilisation = performance.eventLoopUtilization(before).utilization;
  if (result.failures > 0) {
    throw new Error(
      `${what}: ${result.failures} of ${result.requests} requests failed, e.g. ${result.failureSample}`,
    );
  }
  return { result, serverLoopUtilisation };
}

const byThroughput = (a: Run, b: Run) => a.result.requestsPerSecond - b.result.requestsPerSecond;
const medianRun = (runs: readonly Run[]): Run => {
  const run = [...runs].sort(byThroughput)[Math.floor(runs.length / 2)];
  if (run === undefined) throw new Error("no runs");
  return run;
};
const mean = (values: readonly number[]) => values.reduce((sum, v) => sum + v, 0) / values.length;
const percent = (share: number) => formatNumber(share * 100, 1);

function printRoute(label: string, runs: readonly Run[]): void {
  const { result } = medianRun(runs);
  report.figure(`${label}: throughput (median round)`, formatNumber(result.requestsPerSecond), "req/s");
  report.figure(`${label}: p50 latency (median round)`, formatNumber(result.p50Ms, 2), "ms");
  report.figure(`${label}: p99 latency (median round)`, formatNumber(result.p99Ms, 2), "ms");
  report.figure(
    `${label}: throughput per round`,
    runs.map((run) => formatNumber(run.result.requestsPerSecond)).join(", "),
    "req/s",
  );
  report.figure(
    `${label}: server event-loop utilisation`,
    percent(mean(runs.map((run) => run.serverLoopUtilisation))),
    "% (mean of rounds)",
  );
  report.figure(
    `${label}: load generator CPU`,
    percent(mean(runs.map((run) => run.result.clientCpuShare))),
    "% of one core (mean of rounds)",
  );
}

/** Read throughput and latency of the real app against a one-`GetItem` route, then the process's memory. */
export async function measureHttpReads(stack: Stack): Promise<void> {
  const service: Run[] = [];
  const bare: Run[] = [];
  for (let round = 0; round < DISCARDED_ROUNDS + REPORTED_ROUNDS; round += 1) {
    const bareRun = await measureRun(stack.bareRead, "bare route");
    const serviceRun = await measureRun(stack.serviceRead, "service");
    if (round < DISCARDED_ROUNDS) continue;
    bare.push(bareRun);
    service.push(serviceRun);
  }
  const sharesPerRound = service.map(
    (run, i) => run.result.requestsPerSecond / (bare[i]?.result.requestsPerSecond ?? 0),
  );
  const share = median(sharesPerRound);

  report.section(
    `2. HTTP reads, ${CONCURRENCY} keep-alive connections, ${REPORTED_ROUNDS} rounds of ${MEASURE_MS / 1000} s per route`,
  );
  report.note("server, AWS SDK and dynalite (in memory) share one process and event loop; loopback only");
  report.note("load generator: a separate Node process, so it runs on the other core");
  report.note(
    `routes alternate; each run has ${WARMUP_REQUESTS} warm-up requests; ${DISCARDED_ROUNDS} earlier round discarded`,
  );
  report.note("service access log at INFO, serialised per request, written to a discarding sink");
  report.note("service = GET /v1/tenants/:t/secrets/:name, runner token, X-Audit-Reason, 1 KiB value");
  report.note("bare = Hono route doing one GetItem of the same item through the same DocumentClient");
  printRoute("service", service);
  printRoute("bare", bare);
  report.figure("service / bare throughput per round", sharesPerRound.map(percent).join(", "), "%");
  report.figure(
    `service / bare, median of rounds (target ≥ ${formatNumber(TARGET_SHARE * 100)}%)`,
    percent(share),
    `%, ${verdict(share >= TARGET_SHARE)}`,
  );

  const memory = process.memoryUsage();
  report.section("memory after the HTTP runs (this process: server + dynalite; not the load generator)");
  report.figure("RSS", mib(memory.rss), "MiB");
  report.figure("heap used", mib(memory.heapUsed), "MiB");
}
