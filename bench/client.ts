import { StrongboxClient } from "../client/src/index.ts";
import { startHarness } from "../testing/harness.ts";
import { discardingLogger, formatNumber, report, serveFetch, verdict } from "./support.ts";

// @strongbox/client against the real app over loopback HTTP. Requests are counted where they arrive,
// in front of the app. The steady-state and rotation figures run on a shifted clock (the process's Date,
// which server and client share), so 1,000 calls can span minutes of simulated time at a fixed rate
// and a rotation can fall due inside them; the latency figure runs on the real clock.

const TENANT = "bench-client";
const CALLS = 1_000;
/** The call rate the per-1,000 figures assume: 10 getSecret calls a second, one every 100 ms. */
const CALL_SPACING_MS = 100;
const LATENCY_CALLS = 100_000;
const TARGET_REQUESTS_PER_1000 = 1;
const TARGET_P99_US = 50;

const RealDate = Date;
let shiftMs = 0;
/** The process's clock moved forward by `shiftMs`, for everything that asks Date. */
class ShiftedDate extends RealDate {
  constructor(...args: [] | [string | number | Date]) {
    if (args.length === 0) super(RealDate.now() + shiftMs);
    else super(args[0]);
  }
  static override now(): number {
    return RealDate.now() + shiftMs;
  }
}

export async function measureClient(): Promise<void> {
  globalThis.Date = ShiftedDate as DateConstructor;
  try {
    await measureCounts();
  } finally {
    globalThis.Date = RealDate;
    shiftMs = 0;
  }
  await measureLatency();
}

async function startServed() {
  const harness = await startHarness({ logger: discardingLogger() });
  let reads = 0;
  const served = await serveFetch((request) => {
    if (request.method === "GET" && /\/secrets\/[^/]+$/.test(new URL(request.url).pathname)) reads += 1;
    return harness.app.fetch(request);
  });
  // Long-lived tokens: the shifted clock runs days ahead.
  const admin = (await harness.runtime.tokens.issue("admin", ["*"], 30 * 24 * 3600)).token;
  const runner = (await harness.runtime.tokens.issue("runner", [TENANT], 30 * 24 * 3600)).token;
  const operator = new StrongboxClient({ baseUrl: served.url, token: admin, cache: false });
  await fetch(`${served.url}/v1/tenants`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ tenantId: TENANT }),
  });
  return {
    url: served.url,
    runner,
    operator,
    reads: () => reads,
    async close() {
      await served.close();
      await harness.close();
    },
  };
}

async function measureCounts(): Promise<void> {
  const s = await startServed();
  try {
    report.section("client: requests per 1,000 getSecret calls, default cache, 10 calls/s (100 s)");
    await s.operator.putSecret(TENANT, "steady", { value: "steady-value" });
    const steady = new StrongboxClient({ baseUrl: s.url, token: s.runner, reason: "bench" });
    await steady.getSecret(TENANT, "steady");
    let before = s.reads();
    for (let i = 0; i < CALLS; i += 1) {
      shiftMs += CALL_SPACING_MS;
      await steady.getSecret(TENANT, "steady");
      await nextTurn();
    }
    await settle();
    const warm = s.reads() - before;
    report.figure(
      "warm steady state",
      formatNumber(warm),
      `requests ${verdict(warm <= TARGET_REQUESTS_PER_1000)} (<= ${TARGET_REQUESTS_PER_1000})`,
    );

    // A generated secret due 50 s into the calls, rotated by the scheduled runner 10 s after it fell due.
    await s.operator.putSecret(TENANT, "rotating", { value: "first" });
    const policy = await s.operator.setRotationPolicy(TENANT, "rotating", {
      rotationPeriodDays: 1,
      generator: { kind: "token", length: 32 },
    });
    const dueAt = Date.parse(policy.rotationDueAt ?? "");
    shiftMs += dueAt - Date.now() - (CALLS / 2) * CALL_SPACING_MS;
    const client = new StrongboxClient({ baseUrl: s.url, token: s.runner, reason: "bench" });
    const first = await client.getSecret(TENANT, "rotating");
    before = s.reads();
    let rotatedAt: number | undefined;
    let seenAt: number | undefined;
    for (let i = 0; i < CALLS; i += 1) {
      shiftMs += CALL_SPACING_MS;
      if (rotatedAt === undefined && Date.now() >= dueAt + 10_000) {
        await s.operator.rotateSecret(TENANT, "rotating");
        rotatedAt = Date.now();
      }
      const value = await client.getSecret(TENANT, "rotating");
      if (seenAt === undefined && value.version > first.version) seenAt = Date.now();
      await nextTurn();
    }
    await settle();
    report.figure("across a rotation (due at call 500)", formatNumber(s.reads() - before), "requests");
    report.figure(
      "new value served after the promotion",
      seenAt === undefined || rotatedAt === undefined
        ? "never"
        : formatNumber((seenAt - rotatedAt) / 1000, 1),
      "s (overdue TTL 30 s, refreshed ahead at 80 %)",
    );
  } finally {
    await s.close();
  }
}

async function measureLatency(): Promise<void> {
  const s = await startServed();
  try {
    await s.operator.putSecret(TENANT, "hot", { value: "hot-value" });
    const client = new StrongboxClient({ baseUrl: s.url, token: s.runner, reason: "bench" });
    await client.getSecret(TENANT, "hot");
    const samples = new Float64Array(LATENCY_CALLS);
    for (let i = 0; i < LATENCY_CALLS; i += 1) {
      const started = process.hrtime.bigint();
      await client.getSecret(TENANT, "hot");
      samples[i] = Number(process.hrtime.bigint() - started) / 1000;
    }
    samples.sort();
    const at = (q: number) =>
      samples[Math.min(samples.length - 1, Math.floor(samples.length * q))] ?? Number.NaN;
    report.section(`client: a cached getSecret, ${formatNumber(LATENCY_CALLS)} calls`);
    report.figure("p50", formatNumber(at(0.5), 2), "µs");
    report.figure(
      "p99",
      formatNumber(at(0.99), 2),
      `µs ${verdict(at(0.99) < TARGET_P99_US)} (< ${TARGET_P99_US} µs)`,
    );
  } finally {
    await s.close();
  }
}

/** Between two calls the event loop turns, as between a function's invocations: background refreshes get on. */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** Lets a background refresh started by the last call arrive before the count is read. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 200));
