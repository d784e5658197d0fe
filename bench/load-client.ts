/**
 * The load generator's child process (see load.ts): `concurrency` closed loops over a keep-alive agent
 * with as many sockets, so there are exactly that many connections, each with one request in flight.
 */
import { Agent, request } from "node:http";
import { type FromClient, type LoadPlan, type LoadResult, percentile, type ToClient } from "./load.ts";

interface PhaseOutcome {
  readonly latenciesMs: number[];
  readonly failures: number;
  readonly failureSample?: string;
  readonly elapsedMs: number;
  readonly cpuMs: number;
}

function send(message: FromClient): void {
  process.send?.(message);
}

function nextMessage(): Promise<ToClient> {
  return new Promise((resolve) => process.once("message", (message: ToClient) => resolve(message)));
}

function get(agent: Agent, url: URL, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { agent, host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, headers },
      (res) => {
        // The body is drained, not read: the socket goes back to the pool only once it is consumed.
        res.resume();
        res.once("end", () => resolve(res.statusCode ?? 0));
        res.once("error", reject);
      },
    );
    req.once("error", reject);
    req.end();
  });
}

/** Runs the loops until `another()` says no more requests should start. */
async function phase(plan: LoadPlan, agent: Agent, another: () => boolean): Promise<PhaseOutcome> {
  const url = new URL(plan.url);
  const latenciesMs: number[] = [];
  let failures = 0;
  let failureSample: string | undefined;
  const loop = async () => {
    while (another()) {
      const started = performance.now();
      const status = await get(agent, url, plan.headers).catch((error: unknown) => String(error));
      latenciesMs.push(performance.now() - started);
      if (status !== 200) {
        failures += 1;
        failureSample ??= typeof status === "number" ? `HTTP ${status}` : status;
      }
    }
  };
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  await Promise.all(Array.from({ length: plan.concurrency }, loop));
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return {
    latenciesMs,
    failures,
    elapsedMs,
    cpuMs,
    ...(failureSample === undefined ? {} : { failureSample }),
  };
}

function countdown(total: number): () => boolean {
  let started = 0;
  return () => started++ < total;
}

function deadline(durationMs: number): () => boolean {
  const end = performance.now() + durationMs;
  return () => performance.now() < end;
}

function summarize(outcome: PhaseOutcome): LoadResult {
  const sorted = [...outcome.latenciesMs].sort((a, b) => a - b);
  return {
    requests: sorted.length,
    failures: outcome.failures,
    ...(outcome.failureSample === undefined ? {} : { failureSample: outcome.failureSample }),
    elapsedMs: outcome.elapsedMs,
    requestsPerSecond: (sorted.length / outcome.elapsedMs) * 1000,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    clientCpuShare: outcome.cpuMs / outcome.elapsedMs,
  };
}

async function main(): Promise<void> {
  const first = await nextMessage();
  if (first.type !== "plan") throw new Error("expected a plan first");
  const { plan } = first;
  const agent = new Agent({ keepAlive: true, maxSockets: plan.concurrency });

  const warm = await phase(plan, agent, countdown(plan.warmupRequests));
  send({
    type: "warm",
    failures: warm.failures,
    ...(warm.failureSample === undefined ? {} : { failureSample: warm.failureSample }),
  });
  if ((await nextMessage()).type !== "measure") throw new Error("expected measure");

  const measured = await phase(
    plan,
    agent,
    "durationMs" in plan.measure ? deadline(plan.measure.durationMs) : countdown(plan.measure.requests),
  );
  agent.destroy();
  // Exiting only once the result is handed over, so the parent never sees an exit before the result.
  process.send?.({ type: "result", result: summarize(measured) } satisfies FromClient, () => process.exit(0));
}

main().catch((error: unknown) => {
  console.error("load client failed:", error);
  process.exit(1);
});
