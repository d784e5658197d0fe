/**
 * Injected network latency for AWS SDK clients: every request waits `meanMs ± jitterMs` (uniform)
 * before it goes out, inside the retry loop, so a retried call waits again. Loopback dynalite and the
 * KMS test endpoint answer in well under a millisecond; real DynamoDB and KMS take milliseconds, and
 * contention costs grow with that, so the fleet benchmark puts it back.
 */
export interface Latency {
  readonly meanMs: number;
  readonly jitterMs: number;
}

export const DEFAULT_LATENCY: Latency = { meanMs: 5, jitterMs: 2 };

interface WithMiddleware {
  readonly middlewareStack: {
    add(
      middleware: (next: (args: any) => Promise<any>) => (args: any) => Promise<any>,
      options: object,
    ): void;
  };
}

export function injectLatency(client: WithMiddleware, latency: Latency = DEFAULT_LATENCY): void {
  if (latency.meanMs <= 0 && latency.jitterMs <= 0) return;
  client.middlewareStack.add(
    (next) => async (args) => {
      const ms = Math.max(0, latency.meanMs + (Math.random() * 2 - 1) * latency.jitterMs);
      await new Promise((resolve) => setTimeout(resolve, ms));
      return next(args);
    },
    { step: "finalizeRequest", name: "injectedLatency" },
  );
}

/** `FLEET_LATENCY_MS=5` or `5:2` (mean:jitter); unset gives the default. */
export function latencyFromEnv(raw: string | undefined): Latency {
  if (raw === undefined || raw === "") return DEFAULT_LATENCY;
  const [mean, jitter] = raw.split(":").map(Number);
  if (mean === undefined || !Number.isFinite(mean) || (jitter !== undefined && !Number.isFinite(jitter))) {
    throw new Error(`FLEET_LATENCY_MS must be MEAN or MEAN:JITTER in ms, not ${raw}`);
  }
  return { meanMs: mean, jitterMs: jitter ?? 0 };
}
