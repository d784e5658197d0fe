import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";

/**
 * The HTTP load generator runs in a child process, not in this one and not in a worker thread. The
 * machine has 2 cores: the server, the SDK and dynalite share this process's event loop on one, and the
 * client gets the other, so client work never queues behind (or in front of) server work. A child
 * process rather than a worker thread also keeps the client's heap out of the memory figures.
 */
export interface LoadPlan {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly concurrency: number;
  readonly warmupRequests: number;
  /** A fixed duration, or a fixed number of requests, after warm-up. */
  readonly measure: { readonly durationMs: number } | { readonly requests: number };
}

export interface LoadResult {
  readonly requests: number;
  /** Responses other than 200 and transport errors; any at all makes the run's figures meaningless. */
  readonly failures: number;
  readonly failureSample?: string;
  readonly elapsedMs: number;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** The client's CPU time over the measured phase, as a share of one core. */
  readonly clientCpuShare: number;
}

/** Parent to child: the plan, then `measure` once the parent has done what it wants between phases. */
export type ToClient = { readonly type: "plan"; readonly plan: LoadPlan } | { readonly type: "measure" };
/** Child to parent: warm-up finished, then the measured phase's result. */
export type FromClient =
  | { readonly type: "warm"; readonly failures: number; readonly failureSample?: string }
  | { readonly type: "result"; readonly result: LoadResult };

/** Nearest-rank percentile of ascending-sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN;
}

const CLIENT_PATH = fileURLToPath(new URL("./load-client.ts", import.meta.url));

/**
 * Runs one plan in a fresh client process. `betweenPhases` runs after warm-up and before the measured
 * phase, for resetting counters so that they cover exactly the measured requests.
 */
export function runLoad(plan: LoadPlan, betweenPhases?: () => void | Promise<void>): Promise<LoadResult> {
  // tsx's loader hooks are not inherited by child processes, so the client imports tsx itself.
  const child = fork(CLIENT_PATH, {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return new Promise<LoadResult>((resolve, reject) => {
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      child.kill();
      reject(error);
    };
    child.on("message", (message: FromClient) => {
      if (message.type === "warm") {
        if (message.failures > 0) {
          fail(new Error(`${message.failures} warm-up requests failed, e.g. ${message.failureSample}`));
          return;
        }
        Promise.resolve(betweenPhases?.()).then(
          () => child.send({ type: "measure" } satisfies ToClient),
          (error: unknown) => fail(error instanceof Error ? error : new Error(String(error))),
        );
      } else {
        settled = true;
        resolve(message.result);
      }
    });
    child.once("error", fail);
    child.once("exit", (code) => fail(new Error(`load client exited with code ${code} before reporting`)));
    child.send({ type: "plan", plan } satisfies ToClient);
  });
}
