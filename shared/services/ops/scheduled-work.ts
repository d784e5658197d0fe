import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import type { RewrapWork, RotationEvent, RunSummary, SweepWork } from "../../domain/rotation.ts";
import { now } from "../../domain/time.ts";
import type { Deadline } from "../../domain/work.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { RotationEvents } from "../../observability/rotation-events.ts";
import type { DueScan } from "./due-scan.ts";
import { codeOf, recordFailure } from "./run-failure.ts";

/**
 * The scheduled rotation work, shared by the rotation Lambda, the local timer and the on-demand
 * route: unfinished DEK sweeps, an unfinished KEK re-wrap, then secrets whose rotation is due. Each
 * piece checkpoints as it goes, so a run cut short by its deadline loses nothing.
 */
export class ScheduledWork {
  readonly #sweeps: SweepWork;
  readonly #rewrap: RewrapWork;
  readonly #due: DueScan;
  readonly #events: RotationEvents;
  readonly #gate: OperationGate;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;

  constructor(
    sweeps: SweepWork,
    rewrap: RewrapWork,
    due: DueScan,
    events: RotationEvents,
    gate: OperationGate,
    metrics: MetricsRecorder,
    logger: Logger,
  ) {
    this.#sweeps = sweeps;
    this.#rewrap = rewrap;
    this.#due = due;
    this.#events = events;
    this.#gate = gate;
    this.#metrics = metrics;
    this.#logger = logger;
  }

  /** The admin route: the same run, recorded as the caller's change. */
  async runNow(ctx: RequestContext, deadline: Deadline): Promise<RunSummary> {
    const operation = await this.#gate.begin(ctx, "rotation.run");
    return operation.change(
      () => this.run(deadline, ctx.requestId),
      (summary) => ({
        detail: `sweeps ${summary.sweeps.length}, due ${summary.due.found}, rotated ${summary.due.rotated}`,
      }),
    );
  }

  async run(deadline: Deadline, runId: string): Promise<RunSummary> {
    const startedAt = now();
    const events: RotationEvent[] = [];
    const sweeps: RunSummary["sweeps"][number][] = [];
    for (const tenantId of await this.#sweeps.pendingSweeps()) {
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

    let rewrap: RunSummary["rewrap"];
    const rewrapState = await this.#rewrap.rewrapState();
    if (rewrapState !== undefined && rewrapState.phase !== "done" && !deadline.expired()) {
      try {
        const run = await this.#rewrap.runRewrap(runId, deadline);
        rewrap = { phase: run.state.phase, rewrapped: run.rewrapped, stoppedBecause: run.stoppedBecause };
        if (run.stoppedBecause === "done") {
          events.push({
            detailType: "KEK Rewrap Finished",
            detail: { kekId: run.state.targetKekId, rewrapped: run.state.rewrapped },
          });
        }
      } catch (error) {
        recordFailure(this.#metrics, this.#logger, events, { work: "kek-rewrap", code: codeOf(error) });
        rewrap = { phase: rewrapState.phase, rewrapped: 0, stoppedBecause: "failed" };
      }
    }

    const due = await this.#due.run(deadline, runId, events);
    if (events.length > 0) {
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
    const summary: RunSummary = {
      startedAt,
      finishedAt: now(),
      sweeps,
      ...(rewrap === undefined ? {} : { rewrap }),
      due,
      events: events.length,
      outOfTime: deadline.expired(),
    };
    this.#logger.info("rotation run", { runId, ...summary, sweeps: sweeps.length });
    return summary;
  }
}
