import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import type {
  DekAgeWork,
  RewrapDispatch,
  RewrapSummary,
  RewrapWork,
  RotationEvent,
  RunSummary,
  SweepWork,
} from "../../domain/rotation.ts";
import { now } from "../../domain/time.ts";
import type { Deadline } from "../../domain/work.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { RotationEvents } from "../../observability/rotation-events.ts";
import type { DirectoryBackfill } from "../../storage/directory-backfill.ts";
import type { DueScan } from "./due-scan.ts";
import { codeOf, recordFailure } from "./run-failure.ts";

export interface ScheduledWorkOptions {
  /** Rotates DEKs past their rotation period or seal threshold, after the rest of the run. */
  readonly deks: DekAgeWork;
  /** Where the on-demand route hands an unfinished re-wrap: the API may not re-wrap itself. */
  readonly handOff: RewrapDispatch;
  /**
   * Given only to the runtimes that may Scan the table (the rotation function, `npm start`): their
   * runs first backfill the tenant directory of a table written before it existed.
   */
  readonly backfill?: DirectoryBackfill;
}

/**
 * The scheduled rotation work, shared by the rotation Lambda, the local timer and the on-demand
 * route: the directory backfill where this runtime may run it, unfinished DEK sweeps, an unfinished
 * KEK re-wrap, secrets whose rotation is due, then DEKs past their period or seal threshold. Each piece checkpoints as it goes, so a run cut
 * short by its deadline loses nothing, and each fails on its own: a failure is counted, logged and
 * announced, and the run goes on with the next piece.
 */
export class ScheduledWork {
  readonly #sweeps: SweepWork;
  readonly #rewrap: RewrapWork;
  readonly #due: DueScan;
  readonly #events: RotationEvents;
  readonly #gate: OperationGate;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;
  readonly #options: ScheduledWorkOptions;

  constructor(
    sweeps: SweepWork,
    rewrap: RewrapWork,
    due: DueScan,
    events: RotationEvents,
    gate: OperationGate,
    metrics: MetricsRecorder,
    logger: Logger,
    options: ScheduledWorkOptions,
  ) {
    this.#sweeps = sweeps;
    this.#rewrap = rewrap;
    this.#due = due;
    this.#events = events;
    this.#gate = gate;
    this.#metrics = metrics;
    this.#logger = logger;
    this.#options = options;
  }

  /**
   * The admin route: the same run, recorded as the caller's change, except that an unfinished re-wrap
   * is handed off rather than worked on, and a table whose directory awaits its backfill is refused
   * (503 `directory_backfill_pending`) rather than scanned.
   */
  async runNow(ctx: RequestContext, deadline: Deadline): Promise<RunSummary> {
    const operation = await this.#gate.begin(ctx, "rotation.run");
    return operation.change(
      async () => {
        await this.#due.requireDirectory();
        return this.#run(deadline, ctx.requestId, "hand-off");
      },
      (summary) => ({
        detail: `sweeps ${summary.sweeps.length}, due ${summary.due.found}, rotated ${summary.due.rotated}`,
      }),
    );
  }

  /** A scheduled run: the rotation function's, or the local timer's. */
  run(deadline: Deadline, runId: string): Promise<RunSummary> {
    return this.#run(deadline, runId, "run");
  }

  /**
   * What the rotation function does on a re-wrap request (and the local worker on `POST
   * /v1/kek/rewrap`): the re-wrap alone, until it is done, the deadline passes or a pass fails.
   */
  async runRequestedRewrap(deadline: Deadline, runId: string): Promise<RewrapSummary | { skipped: string }> {
    const events: RotationEvent[] = [];
    await this.#backfill(events);
    const rewrap = (await this.#rewrapStep(deadline, runId, "run", events)) ?? {
      skipped: "no unfinished KEK re-wrap",
    };
    await this.#publish(events);
    this.#logger.info("re-wrap run", { runId, ...rewrap });
    return rewrap;
  }

  async #run(deadline: Deadline, runId: string, rewrapMode: "run" | "hand-off"): Promise<RunSummary> {
    const startedAt = now();
    const events: RotationEvent[] = [];
    if (rewrapMode === "run") await this.#backfill(events);
    const sweeps = await this.#sweepStep(deadline, runId, events);
    const rewrap = deadline.expired()
      ? undefined
      : await this.#rewrapStep(deadline, runId, rewrapMode, events);
    const due = await this.#due.run(deadline, runId, events);
    const deks = await this.#dekAgeStep(deadline, runId, events);
    await this.#publish(events);
    const summary: RunSummary = {
      startedAt,
      finishedAt: now(),
      sweeps,
      ...(rewrap === undefined ? {} : { rewrap }),
      deks,
      due,
      events: events.length,
      outOfTime: deadline.expired(),
    };
    this.#logger.info("rotation run", { runId, ...summary, sweeps: sweeps.length });
    return summary;
  }

  async #backfill(events: RotationEvent[]): Promise<void> {
    if (this.#options.backfill === undefined) return;
    try {
      const result = await this.#options.backfill.run();
      if (result.scanned) this.#logger.info("tenant directory backfilled", { tenants: result.tenants });
    } catch (error) {
      // The re-wrap and the due scan then refuse with directory_backfill_pending; the next run retries.
      recordFailure(this.#metrics, this.#logger, events, { work: "directory-backfill", code: codeOf(error) });
    }
  }

  /** Last, so it never takes time from unfinished work; each DEK rotated here queues its sweep for the next run. */
  async #dekAgeStep(
    deadline: Deadline,
    runId: string,
    events: RotationEvent[],
  ): Promise<NonNullable<RunSummary["deks"]>> {
    const result = await this.#options.deks.rotateWornDeks(deadline, runId);
    for (const failure of result.failures) {
      recordFailure(this.#metrics, this.#logger, events, {
        ...(failure.tenantId === undefined ? {} : { tenantId: failure.tenantId }),
        work: "dek-rotation",
        code: failure.code,
      });
    }
    for (const rotated of result.rotated) {
      this.#logger.info("DEK rotated", { runId, ...rotated });
    }
    return {
      checked: result.checked,
      rotated: result.rotated.length,
      failed: result.failures.length,
      scanComplete: result.scanComplete,
    };
  }

  async #sweepStep(
    deadline: Deadline,
    runId: string,
    events: RotationEvent[],
  ): Promise<RunSummary["sweeps"]> {
    const sweeps: RunSummary["sweeps"][number][] = [];
    let pending: string[];
    try {
      pending = await this.#sweeps.pendingSweeps();
    } catch (error) {
      recordFailure(this.#metrics, this.#logger, events, { work: "dek-sweep", code: codeOf(error) });
      return sweeps;
    }
    for (const tenantId of pending) {
      if (deadline.expired()) break;
      try {
        const run = await this.#sweeps.runSweep(tenantId, runId, deadline, runId);
        sweeps.push({
          tenantId,
          phase: run.state.phase,
          resealed: run.resealed,
          stoppedBecause: run.stoppedBecause,
        });
        if (run.stoppedBecause === "done" && run.resealed + (run.state.retiredVersions?.length ?? 0) > 0) {
          events.push({
            detailType: "DEK Sweep Finished",
            detail: {
              tenantId,
              dekVersion: run.state.targetDekVersion,
              retiredVersions: (run.state.retiredVersions ?? []).join(","),
            },
          });
        }
      } catch (error) {
        recordFailure(this.#metrics, this.#logger, events, {
          tenantId,
          work: "dek-sweep",
          code: codeOf(error),
        });
        sweeps.push({ tenantId, phase: "unknown", resealed: 0, stoppedBecause: "failed" });
      }
    }
    return sweeps;
  }

  /** Nothing when no re-wrap is unfinished. */
  async #rewrapStep(
    deadline: Deadline,
    runId: string,
    mode: "run" | "hand-off",
    events: RotationEvent[],
  ): Promise<RewrapSummary | undefined> {
    try {
      const state = await this.#rewrap.rewrapState();
      if (state === undefined || state.phase === "done") return undefined;
      if (mode === "hand-off") {
        await this.#options.handOff.request(runId);
        return { phase: state.phase, pass: state.pass, rewrapped: 0, stoppedBecause: "handed-off" };
      }
      const run = await this.#rewrap.runRewrap(runId, deadline);
      const summary: RewrapSummary = {
        phase: run.state.phase,
        pass: run.state.pass,
        rewrapped: run.rewrapped,
        stoppedBecause: run.stoppedBecause,
      };
      if (run.stoppedBecause === "done") {
        this.#metrics.increment("RotationsCompleted");
        events.push({
          detailType: "KEK Rewrap Finished",
          detail: { kekId: run.state.targetKekId, rewrapped: run.state.rewrapped, passes: run.state.pass },
        });
      }
      if (run.stoppedBecause === "failed") {
        // Each failed DEK was counted in RotationFailures as it failed; this announces the pass.
        const failedByKek = run.state.lastFailedPass?.failedByKek ?? {};
        const failed = Object.values(failedByKek).reduce((sum, n) => sum + n, 0);
        this.#logger.error("rotation work failed", {
          work: "kek-rewrap",
          code: "rewrap_pass_failed",
          failed,
        });
        events.push({
          detailType: "Rotation Failed",
          detail: { work: "kek-rewrap", code: "rewrap_pass_failed", pass: run.state.pass - 1, failed },
        });
        return { ...summary, failedByKek };
      }
      return summary;
    } catch (error) {
      recordFailure(this.#metrics, this.#logger, events, { work: "kek-rewrap", code: codeOf(error) });
      return { phase: "unknown", rewrapped: 0, stoppedBecause: "failed" };
    }
  }

  async #publish(events: readonly RotationEvent[]): Promise<void> {
    if (events.length === 0) return;
    try {
      await this.#events.publish(events);
    } catch (error) {
      this.#metrics.increment("RotationFailures");
      this.#logger.error("rotation events could not be published", {
        errorName: error instanceof Error ? error.name : "unknown",
        count: events.length,
      });
    }
  }
}
