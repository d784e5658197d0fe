import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import { ConflictError, NotFoundError, RateLimitedError } from "../../domain/errors.ts";
import type { SweepState, TenantRotationStatus } from "../../domain/rotation.ts";
import { now } from "../../domain/time.ts";
import type { Tenant } from "../../domain/types.ts";
import type { CheckpointRepository } from "../../storage/checkpoint-repository.ts";
import type { SecretRepository } from "../../storage/secret-repository.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";
import { ciphertextsByDekVersion } from "./census.ts";
import { type DataKeys, MAX_TENANT_WRITE_ATTEMPTS } from "./data-keys.ts";
import { newSweep, sweepOf } from "./dek-sweep.ts";

export interface DekRotationOptions {
  /** A rotation on request within this long of the last one is refused; 0 never refuses. */
  readonly minIntervalMs: number;
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
export class DekRotation {
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
    return operation.change(
      () => this.#rotate(tenantId, this.#options.minIntervalMs),
      ({ dekVersion }) => ({ detail: `DEK v${dekVersion} created; re-encryption sweep queued` }),
    );
  }

  async #rotate(tenantId: string, minIntervalMs: number): Promise<{ tenantId: string; dekVersion: number }> {
    for (let attempt = 0; attempt < MAX_TENANT_WRITE_ATTEMPTS; attempt += 1) {
      const tenant = await this.#tenants.get(tenantId);
      if (tenant === undefined) throw new NotFoundError(`tenant ${tenantId} does not exist`);
      refuseTooSoon(tenant, minIntervalMs);
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
      if (await this.#tenants.replace(next, tenant.revision ?? 0)) {
        await this.#checkpoints.start(sweepOf(tenantId), newSweep(tenantId, version, at));
        return { tenantId, dekVersion: version };
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
