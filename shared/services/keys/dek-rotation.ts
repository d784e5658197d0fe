import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import {
  ConflictError,
  NotFoundError,
  RateLimitedError,
  StrongboxError,
  TenantDeletedError,
} from "../../domain/errors.ts";
import type { DekAgeSummary, DekAgeWork, SweepState, TenantRotationStatus } from "../../domain/rotation.ts";
import { now } from "../../domain/time.ts";
import type { Tenant } from "../../domain/types.ts";
import type { Deadline } from "../../domain/work.ts";
import type { CheckpointRepository } from "../../storage/checkpoint-repository.ts";
import type { SecretRepository } from "../../storage/secret-repository.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";
import { ciphertextsByDekVersion } from "./census.ts";
import { type DataKeys, MAX_TENANT_WRITE_ATTEMPTS } from "./data-keys.ts";
import { newSweep, sweepOf } from "./dek-sweep.ts";

export interface DekRotationOptions {
  /** A rotation on request within this long of the last one is refused; 0 never refuses. */
  readonly minIntervalMs: number;
  /** The scheduled runner rotates a DEK this old (since the tenant's creation or last rotation). */
  readonly periodMs: number;
  /** The scheduled runner rotates a DEK that has sealed this many values. */
  readonly sealThreshold: number;
}

const AGE_SCAN_PAGE = 100;

const codeOf = (error: unknown) => (error instanceof StrongboxError ? error.code : "internal_error");

interface AgeScanCheckpoint {
  /** The last tenant the current round has checked. */
  readonly afterTenant?: string;
  readonly updatedAt: string;
}

/** The 429 for a rotation on request too soon after the last one (tenant creation does not count). */
function refuseTooSoon(tenant: Tenant, minIntervalMs: number): void {
  if (minIntervalMs <= 0 || tenant.dekRotatedAt === undefined) return;
  const waitMs = Date.parse(tenant.dekRotatedAt) + minIntervalMs - Date.now();
  if (waitMs > 0) {
    throw new RateLimitedError(
      `tenant ${tenant.tenantId}'s DEK was rotated at ${tenant.dekRotatedAt}; rotate it again after the minimum interval`,
      Math.ceil(waitMs / 1000),
    );
  }
}

/** A tenant's DEK versions: the next one made on request, and where each version's ciphertext stands. */
export class DekRotation implements DekAgeWork {
  readonly #tenants: TenantRepository;
  readonly #secrets: SecretRepository;
  readonly #checkpoints: CheckpointRepository;
  readonly #dataKeys: DataKeys;
  readonly #gate: OperationGate;
  readonly #options: DekRotationOptions;

  constructor(
    tenants: TenantRepository,
    secrets: SecretRepository,
    checkpoints: CheckpointRepository,
    dataKeys: DataKeys,
    gate: OperationGate,
    options: DekRotationOptions,
  ) {
    this.#options = options;
    this.#tenants = tenants;
    this.#secrets = secrets;
    this.#checkpoints = checkpoints;
    this.#dataKeys = dataKeys;
    this.#gate = gate;
  }

  /**
   * Creates the next DEK version; new writes use it at once, and a sweep is queued for the rest. Each
   * call costs a GenerateDataKey and restarts the sweep, so a tenant whose DEK was rotated less than
   * the minimum interval ago is refused with 429 and Retry-After. The interval is read from the tenant
   * item's `dekRotatedAt`, so it holds across instances; racing callers each re-read it after losing
   * the conditional write, so only one of them rotates.
   */
  async rotateDek(ctx: RequestContext, tenantId: string): Promise<{ tenantId: string; dekVersion: number }> {
    const operation = await this.#gate.begin(ctx, "tenant.rotate-dek", { tenantId });
    const { dekVersion } = await operation.change(
      () =>
        this.#rotate(tenantId, (tenant) => {
          refuseTooSoon(tenant, this.#options.minIntervalMs);
          return true;
        }),
      ({ dekVersion }) => ({ detail: `DEK v${dekVersion} created; re-encryption sweep queued` }),
    );
    return { tenantId, dekVersion };
  }

  /**
   * The scheduled runner's round over every tenant: a DEK older than the rotation period, or past the
   * seal threshold, is rotated as the system's own change. Checks the deadline before every tenant and
   * checkpoints the last one it checked, so a round cut short continues in the next run.
   */
  async rotateWornDeks(deadline: Deadline, runId: string): Promise<DekAgeSummary> {
    const rotated: { tenantId: string; dekVersion: number; reason: "age" | "seals" }[] = [];
    const failures: { tenantId?: string; code: string }[] = [];
    let checked = 0;
    const summary = (scanComplete: boolean): DekAgeSummary => ({ checked, rotated, failures, scanComplete });
    const checkpoint = (afterTenant: string | undefined) =>
      this.#checkpoints.start<AgeScanCheckpoint>("dek-age-scan", {
        ...(afterTenant === undefined ? {} : { afterTenant }),
        updatedAt: now(),
      });
    try {
      // The due scan, earlier in the run, has already counted and announced a pending backfill.
      if (!(await this.#tenants.directoryComplete())) return summary(false);
      let after = (await this.#checkpoints.get<AgeScanCheckpoint>("dek-age-scan"))?.afterTenant;
      while (!deadline.expired()) {
        const page = await this.#tenants.scan(after, AGE_SCAN_PAGE);
        for (const tenant of page.tenants) {
          if (deadline.expired()) {
            await checkpoint(after);
            return summary(false);
          }
          checked += 1;
          const reason = this.#wornBy(tenant);
          if (reason !== undefined) {
            try {
              const done = await this.#rotateScheduled(tenant.tenantId, reason, runId);
              if (done !== undefined) rotated.push({ tenantId: tenant.tenantId, dekVersion: done, reason });
            } catch (error) {
              failures.push({ tenantId: tenant.tenantId, code: codeOf(error) });
            }
          }
          after = tenant.tenantId;
        }
        if (page.last === undefined) {
          await checkpoint(undefined);
          return summary(true);
        }
        after = page.last;
        await checkpoint(after);
      }
    } catch (error) {
      failures.push({ code: codeOf(error) });
    }
    return summary(false);
  }

  /** Why a tenant's current DEK is due for rotation, if it is. */
  #wornBy(tenant: Tenant): "age" | "seals" | undefined {
    // A deleted tenant's DEKs were shredded on purpose: it never gets a new one.
    if (tenant.deletedAt !== undefined) return undefined;
    if ((tenant.dekSeals ?? 0) >= this.#options.sealThreshold) return "seals";
    const since = Date.parse(tenant.dekRotatedAt ?? tenant.createdAt);
    if (!(Date.now() - since < this.#options.periodMs)) return "age";
    return undefined;
  }

  /** The new DEK version, or undefined when another runner rotated it first. */
  async #rotateScheduled(
    tenantId: string,
    reason: "age" | "seals",
    runId: string,
  ): Promise<number | undefined> {
    const operation = this.#gate.system(
      "tenant.rotate-dek",
      { tenantId, detail: reason === "age" ? "rotation period reached" : "seal threshold reached" },
      runId,
    );
    const result = await operation.change(
      // Judged again on every read of the tenant: two runners at once rotate it only once.
      () => this.#rotate(tenantId, (tenant) => this.#wornBy(tenant) !== undefined),
      ({ dekVersion, rotated }) => ({
        detail: rotated
          ? `DEK v${dekVersion} created (${reason}); re-encryption sweep queued`
          : `DEK v${dekVersion} was already rotated`,
      }),
    );
    return result.rotated ? result.dekVersion : undefined;
  }

  /** `proceed` decides on each fresh read of the tenant whether to rotate (or throws to refuse). */
  async #rotate(
    tenantId: string,
    proceed: (tenant: Tenant) => boolean,
  ): Promise<{ tenantId: string; dekVersion: number; rotated: boolean }> {
    for (let attempt = 0; attempt < MAX_TENANT_WRITE_ATTEMPTS; attempt += 1) {
      const tenant = await this.#tenants.get(tenantId);
      if (tenant === undefined) throw new NotFoundError(`tenant ${tenantId} does not exist`);
      if (tenant.deletedAt !== undefined) throw new TenantDeletedError(`tenant ${tenantId} was deleted`);
      if (!proceed(tenant)) return { tenantId, dekVersion: tenant.currentDekVersion, rotated: false };
      const version =
        Math.max(
          tenant.currentDekVersion,
          ...tenant.dataKeys.map((key) => key.version),
          ...(tenant.retiredDataKeys ?? []).map((key) => key.version),
        ) + 1;
      const wrapped = await this.#dataKeys.generate(tenantId, version);
      // Queued before the DEK exists: a crash in between leaves a sweep with nothing to do, never a
      // DEK version nobody sweeps towards.
      await this.#checkpoints.addPendingSweep(tenantId);
      const at = now();
      const next: Tenant = {
        ...tenant,
        currentDekVersion: version,
        dataKeys: [...tenant.dataKeys, wrapped],
        dekRotatedAt: at,
      };
      if (await this.#tenants.replace(next, tenant.revision ?? 0, { resetSeals: true })) {
        await this.#checkpoints.start(sweepOf(tenantId), newSweep(tenantId, version, at));
        return { tenantId, dekVersion: version, rotated: true };
      }
    }
    throw new ConflictError(`tenant ${tenantId} was changed concurrently; retry the rotation`);
  }

  async status(ctx: RequestContext, tenantId: string): Promise<TenantRotationStatus> {
    const operation = await this.#gate.begin(ctx, "rotation.read", { tenantId });
    const tenant = await this.#tenants.get(tenantId);
    if (tenant === undefined) throw new NotFoundError(`tenant ${tenantId} does not exist`);
    const counts = await this.countByDekVersion(tenantId);
    const sweep = await this.#checkpoints.get<SweepState>(sweepOf(tenantId));
    await operation.succeeded();
    return {
      tenantId,
      currentDekVersion: tenant.currentDekVersion,
      dataKeys: tenant.dataKeys.map(({ version, kekId, createdAt }) => ({
        version,
        kekId,
        createdAt,
        items: counts[String(version)] ?? 0,
      })),
      retiredDataKeys: tenant.retiredDataKeys ?? [],
      itemsByDekVersion: counts,
      ...(sweep === undefined ? {} : { sweep }),
    };
  }

  /** Ciphertexts per DEK version, counted live: what a sweep has left to do. */
  countByDekVersion(tenantId: string): Promise<Record<string, number>> {
    return ciphertextsByDekVersion(this.#secrets, tenantId);
  }
}
