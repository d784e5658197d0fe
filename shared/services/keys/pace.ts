import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import { setImmediate as nextTurn, setTimeout as sleep } from "node:timers/promises";

export interface PaceOptions {
  /** Items of background work in flight at once. */
  readonly concurrency: number;
  /** Event-loop delay (p99 over the last window) above which the work backs off. */
  readonly lagTargetMs: number;
  /** The longest single back-off, so the work always moves, however busy the foreground. */
  readonly maxPauseMs: number;
}

/**
 * Defaults for the sweeps. The foreground (reads) and the background work share one event loop, and
 * on a busy instance the loop is already saturated by requests: a page of items sent at once puts a
 * hundred callbacks in front of every read. Four in flight keep the store busy while the loop stays
 * short. The short cap on the pause keeps a sweep moving (and finishing) under a loop that requests
 * keep saturated, or that a loaded machine delays whatever this process does.
 */
export const SWEEP_PACE: PaceOptions = { concurrency: 4, lagTargetMs: 20, maxPauseMs: 10 };

/** How often the lag window starts afresh, so the back-off follows the current load, not the past. */
const WINDOW_MS = 100;

/**
 * Runs background work so that foreground requests on the same event loop are not starved: a bounded
 * number of items in flight, a yield to the loop (setImmediate) before each item, and a pause that
 * grows with the loop's measured delay (monitorEventLoopDelay) while it is above the target and
 * shrinks back once it is not. The pause is capped, so the work slows under load but never stops.
 */
export class Pace {
  readonly #options: PaceOptions;
  #histogram: IntervalHistogram | undefined;
  #windowStartedAt = 0;
  #pauseMs = 0;
  #users = 0;

  constructor(options: PaceOptions = SWEEP_PACE) {
    this.#options = options;
  }

  /** The pause each item currently waits, for tests and diagnostics. */
  get pauseMs(): number {
    return this.#pauseMs;
  }

  /** `work` over every item, at most `concurrency` at once; results in the items' order. */
  async map<T, R>(items: readonly T[], work: (item: T) => Promise<R>): Promise<R[]> {
    const results = new Array<R>(items.length);
    let next = 0;
    this.#start();
    try {
      const workers = Array.from({ length: Math.min(this.#options.concurrency, items.length) }, async () => {
        while (next < items.length) {
          const index = next;
          next += 1;
          await this.#turn();
          results[index] = await work(items[index] as T);
        }
      });
      await Promise.all(workers);
    } finally {
      this.#stop();
    }
    return results;
  }

  /** The histogram samples only while some work runs: an idle instance pays nothing for it. */
  #start(): void {
    this.#users += 1;
    if (this.#histogram !== undefined) return;
    this.#histogram = monitorEventLoopDelay({ resolution: 5 });
    this.#histogram.enable();
    this.#windowStartedAt = performance.now();
  }

  #stop(): void {
    this.#users -= 1;
    if (this.#users > 0) return;
    this.#histogram?.disable();
    this.#histogram = undefined;
  }

  async #turn(): Promise<void> {
    await nextTurn();
    const histogram = this.#histogram;
    if (histogram === undefined) return;
    const at = performance.now();
    if (at - this.#windowStartedAt >= WINDOW_MS && histogram.count > 0) {
      // The histogram reports nanoseconds of delay beyond the sampling resolution.
      const lagMs = histogram.percentile(99) / 1e6;
      const { lagTargetMs, maxPauseMs } = this.#options;
      this.#pauseMs =
        lagMs > lagTargetMs
          ? Math.min(maxPauseMs, Math.max(1, this.#pauseMs * 2, lagMs - lagTargetMs))
          : Math.floor(this.#pauseMs / 2);
      histogram.reset();
      this.#windowStartedAt = at;
    }
    if (this.#pauseMs > 0) await sleep(this.#pauseMs);
  }
}
