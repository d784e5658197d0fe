import { StrongboxError } from "../domain/errors.ts";
import { SCHEDULED_TOKEN_PREFIX } from "../domain/schemas.ts";
import { type SecretHead, SYSTEM_SCOPE } from "../domain/types.ts";
import type { Logger } from "../observability/logger.ts";
import type { MetricsRecorder } from "../observability/metrics.ts";
import type { RotationEvent, RotationEvents } from "../observability/rotation-events.ts";
import type { CheckpointRepository } from "../storage/checkpoint-repository.ts";
import type { SecretRepository } from "../storage/secret-repository.ts";
import type { TenantRepository } from "../storage/tenant-repository.ts";
import type { AuditService } from "./audit-service.ts";
import { now, type RequestContext } from "./context.ts";
import type { Deadline, RotationService, SweepRun } from "./rotation-service.ts";
import type { SecretRotationService } from "./secret-rotation-service.ts";

const DUE_PAGE = 100;

export interface RunSummary {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly sweeps: readonly {
    tenantId: string;
    phase: string;
    resealed: number;
    stoppedBecause: SweepRun["stoppedBecause"] | "failed";
  }[];
  readonly rewrap?: { readonly phase: string; readonly rewrapped: number; readonly stoppedBecause: string };
  readonly due: { found: number; rotated: number; notified: number; failed: number; scanComplete: boolean };
  readonly events: number;
  /** True when the deadline cut the run short; the next run continues from the checkpoints. */
  readonly outOfTime: boolean;
}

interface DueScan {
  /** The last tenant whose due secrets have been handled in the current round. */
  readonly afterTenant?: string;
  readonly updatedAt: string;
}

const codeOf = (error: unknown) => (error instanceof StrongboxError ? error.code : "internal_error");

/**
 * The scheduled rotation work, shared by the rotation Lambda, the local timer and the on-demand
 * route: unfinished DEK sweeps, an unfinished KEK re-wrap, then secrets whose rotation is due. Each
 * piece checkpoints as it goes, so a run cut short by its deadline loses nothing.
 */
export class RotationRunner {
  constructor(
    private readonly keys: RotationService,
    private readonly values: SecretRotationService,
    private readonly secrets: SecretRepository,
    private readonly tenants: TenantRepository,
    private readonly rotations: CheckpointRepository,
    private readonly events: RotationEvents,
    private readonly audit: AuditService,
    private readonly metrics: MetricsRecorder,
    private readonly logger: Logger,
  ) {}

  /** The admin route: the same run, recorded as the caller's change. */
  async runNow(ctx: RequestContext, deadline: Deadline): Promise<RunSummary> {
    const target = { tenantId: SYSTEM_SCOPE, action: "rotation.run" } as const;
    await this.audit.authorize(ctx, "rotation:run", target);
    return this.audit.aroundChange(
      this.audit.entry(ctx, target),
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
    for (const tenantId of await this.keys.pendingSweeps()) {
      if (deadline.expired()) break;
      try {
        const run = await this.keys.runSweep(tenantId, runId, deadline, runId);
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
        this.#failed(events, { tenantId, work: "dek-sweep", code: codeOf(error) });
        sweeps.push({ tenantId, phase: "unknown", resealed: 0, stoppedBecause: "failed" });
      }
    }

    let rewrap: RunSummary["rewrap"];
    const rewrapState = await this.keys.rewrapState();
    if (rewrapState !== undefined && rewrapState.phase !== "done" && !deadline.expired()) {
      try {
        const run = await this.keys.runRewrap(runId, deadline);
        rewrap = { phase: run.state.phase, rewrapped: run.rewrapped, stoppedBecause: run.stoppedBecause };
        if (run.stoppedBecause === "done") {
          events.push({
            detailType: "KEK Rewrap Finished",
            detail: { kekId: run.state.targetKekId, rewrapped: run.state.rewrapped },
          });
        }
      } catch (error) {
        this.#failed(events, { work: "kek-rewrap", code: codeOf(error) });
        rewrap = { phase: rewrapState.phase, rewrapped: 0, stoppedBecause: "failed" };
      }
    }

    const due = await this.#dueSecrets(deadline, runId, events);
    if (events.length > 0) {
      try {
        await this.events.publish(events);
      } catch (error) {
        this.metrics.increment("RotationFailures");
        this.logger.error("rotation events could not be published", {
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
    this.logger.info("rotation run", { runId, ...summary, sweeps: sweeps.length });
    return summary;
  }

  /** Checks the deadline before every tenant, and checkpoints the last tenant it finished. */
  async #dueSecrets(deadline: Deadline, runId: string, events: RotationEvent[]): Promise<RunSummary["due"]> {
    const counts = { found: 0, rotated: 0, notified: 0, failed: 0, scanComplete: false };
    const at = now();
    await this.tenants.ensureDirectory();
    let after = (await this.rotations.get<DueScan>("due-scan"))?.afterTenant;
    const checkpoint = (afterTenant: string | undefined) =>
      this.rotations.start<DueScan>("due-scan", {
        ...(afterTenant === undefined ? {} : { afterTenant }),
        updatedAt: now(),
      });
    while (!deadline.expired()) {
      const page = await this.tenants.listIds(after, DUE_PAGE);
      for (const tenantId of page.tenantIds) {
        if (deadline.expired()) {
          await checkpoint(after);
          return counts;
        }
        await this.#rotateDueIn(tenantId, at, runId, events, counts);
        after = tenantId;
      }
      if (page.last === undefined) {
        await checkpoint(undefined);
        counts.scanComplete = true;
        break;
      }
      await checkpoint(after);
    }
    return counts;
  }

  async #rotateDueIn(
    tenantId: string,
    at: string,
    runId: string,
    events: RotationEvent[],
    counts: { found: number; rotated: number; notified: number; failed: number },
  ): Promise<void> {
    for (const head of await this.#dueIn(tenantId, at)) {
      counts.found += 1;
      this.metrics.increment("RotationsDue");
      const dueAt = head.rotation?.dueAt ?? at;
      try {
        // One token per due date: two runners, or a run after a crash, resume the same rotation.
        const token = `${SCHEDULED_TOKEN_PREFIX}${Date.parse(dueAt)}`;
        const result = await this.values.rotateScheduled(tenantId, head.name, token, runId, events);
        if (result.status === "rotated") {
          counts.rotated += 1;
          this.metrics.increment("RotationsCompleted");
        } else {
          counts.notified += 1;
        }
      } catch (error) {
        counts.failed += 1;
        this.#failed(events, {
          tenantId,
          secretName: head.name,
          work: "secret-rotation",
          code: codeOf(error),
        });
      }
    }
  }

  async #dueIn(tenantId: string, at: string): Promise<SecretHead[]> {
    const heads: SecretHead[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.secrets.listDue(tenantId, at, DUE_PAGE, cursor);
      heads.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return heads;
  }

  #failed(events: RotationEvent[], detail: Record<string, string>): void {
    this.metrics.increment("RotationFailures");
    this.logger.error("rotation work failed", detail);
    events.push({ detailType: "Rotation Failed", detail });
  }
}

/** A deadline `ms` from now. */
export function deadlineIn(ms: number): Deadline {
  const end = Date.now() + ms;
  return { expired: () => Date.now() >= end };
}
