import { TenantDeletedError } from "../../domain/errors.ts";
import type { RotationEvent, RunSummary, ScheduledRotation } from "../../domain/rotation.ts";
import { SCHEDULED_TOKEN_PREFIX } from "../../domain/schemas.ts";
import { now } from "../../domain/time.ts";
import type { SecretHead } from "../../domain/types.ts";
import type { Deadline } from "../../domain/work.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { CheckpointRepository } from "../../storage/checkpoint-repository.ts";
import type { SecretRepository } from "../../storage/secret-repository.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";
import { codeOf, recordFailure } from "./run-failure.ts";

const DUE_PAGE = 100;

interface DueScanCheckpoint {
  /** The last tenant whose due secrets have been handled in the current round. */
  readonly afterTenant?: string;
  readonly updatedAt: string;
}

/** The round over every tenant for secrets whose rotation is due, resumable tenant by tenant. */
export class DueScan {
  readonly #values: ScheduledRotation;
  readonly #secrets: SecretRepository;
  readonly #tenants: TenantRepository;
  readonly #checkpoints: CheckpointRepository;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;

  constructor(
    values: ScheduledRotation,
    secrets: SecretRepository,
    tenants: TenantRepository,
    checkpoints: CheckpointRepository,
    metrics: MetricsRecorder,
    logger: Logger,
  ) {
    this.#values = values;
    this.#secrets = secrets;
    this.#tenants = tenants;
    this.#checkpoints = checkpoints;
    this.#metrics = metrics;
    this.#logger = logger;
  }

  /** The due scan goes over every tenant: refused (503) while the directory awaits its backfill. */
  requireDirectory(): Promise<void> {
    return this.#tenants.requireDirectory();
  }

  /**
   * Checks the deadline before every tenant, and checkpoints the last tenant it finished. A failure of
   * the round itself (the store, the directory) is recorded like any other piece of scheduled work and
   * ends the round with what it had done; the next run continues from the checkpoint.
   */
  async run(deadline: Deadline, runId: string, events: RotationEvent[]): Promise<RunSummary["due"]> {
    const counts: RunSummary["due"] = { found: 0, rotated: 0, notified: 0, failed: 0, scanComplete: false };
    try {
      await this.#round(deadline, runId, events, counts);
    } catch (error) {
      const code = codeOf(error);
      recordFailure(this.#metrics, this.#logger, events, { work: "due-scan", code });
      counts.code = code;
    }
    return counts;
  }

  async #round(
    deadline: Deadline,
    runId: string,
    events: RotationEvent[],
    counts: RunSummary["due"],
  ): Promise<void> {
    const at = now();
    await this.#tenants.requireDirectory();
    let after = (await this.#checkpoints.get<DueScanCheckpoint>("due-scan"))?.afterTenant;
    const checkpoint = (afterTenant: string | undefined) =>
      this.#checkpoints.start<DueScanCheckpoint>("due-scan", {
        ...(afterTenant === undefined ? {} : { afterTenant }),
        updatedAt: now(),
      });
    while (!deadline.expired()) {
      const page = await this.#tenants.listIds(after, DUE_PAGE);
      for (const tenantId of page.tenantIds) {
        if (deadline.expired()) {
          await checkpoint(after);
          return;
        }
        await this.#rotateDueIn(tenantId, at, runId, events, counts);
        after = tenantId;
      }
      if (page.last === undefined) {
        await checkpoint(undefined);
        counts.scanComplete = true;
        return;
      }
      await checkpoint(after);
    }
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
      this.#metrics.increment("RotationsDue");
      const dueAt = head.rotation?.dueAt ?? at;
      try {
        // One token per due date: two runners, or a run after a crash, resume the same rotation.
        const token = `${SCHEDULED_TOKEN_PREFIX}${Date.parse(dueAt)}`;
        const result = await this.#values.rotateScheduled(tenantId, head.name, token, runId, events);
        if (result.status === "rotated") {
          counts.rotated += 1;
          this.#metrics.increment("RotationsCompleted");
        } else {
          counts.notified += 1;
        }
      } catch (error) {
        // A tenant deleted since the listing has nothing left to rotate; its sweep removes the heads.
        if (error instanceof TenantDeletedError) continue;
        counts.failed += 1;
        recordFailure(this.#metrics, this.#logger, events, {
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
      const page = await this.#secrets.listDue(tenantId, at, DUE_PAGE, cursor);
      heads.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return heads;
  }
}
