import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import {
  ConflictError,
  NotFoundError,
  StoreUnavailableError,
  TenantDeletedError,
} from "../../domain/errors.ts";
import type { ItemIntegrity } from "../../domain/item-integrity.ts";
import { canonicalSeal, type DataKeyDropper, GLOBAL_SEAL_SCOPE, type SealRecord } from "../../domain/seal.ts";
import { now } from "../../domain/time.ts";
import type { SealRepository } from "../../storage/seal-repository.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";
import type { SealGuard } from "./seal-guard.ts";

/** What a seal route answers: the state after the call. */
export interface SealView {
  readonly scope: string;
  readonly sealed: boolean;
  readonly reason: string;
  readonly changedBy: string;
  readonly changedAt: string;
  /** Set while an unseal waits for a second admin (`UNSEAL_REQUIRES_SECOND_ADMIN`). */
  readonly unsealRequestedBy?: string;
}

/** Another writer changed the seal item between our read and our write; a few re-reads settle it. */
const MAX_ATTEMPTS = 5;

export interface SealControlOptions {
  /** The stage's `UNSEAL_REQUIRES_SECOND_ADMIN`: an unseal is one admin's request and another's approval. */
  readonly unsealNeedsSecondAdmin: boolean;
}

/**
 * The kill switch (seed 002 §7.1): seal a tenant or everything at once, and unseal it. Every change is
 * a conditional write over the item it read, MAC'd, and recorded at high severity by the gate.
 */
export class SealControl {
  readonly #seals: SealRepository;
  readonly #guard: SealGuard;
  readonly #integrity: ItemIntegrity;
  readonly #tenants: TenantRepository;
  readonly #dataKeys: DataKeyDropper;
  readonly #gate: OperationGate;
  readonly #options: SealControlOptions;

  constructor(dependencies: {
    readonly seals: SealRepository;
    readonly guard: SealGuard;
    readonly integrity: ItemIntegrity;
    readonly tenants: TenantRepository;
    readonly dataKeys: DataKeyDropper;
    readonly gate: OperationGate;
    readonly options: SealControlOptions;
  }) {
    this.#seals = dependencies.seals;
    this.#guard = dependencies.guard;
    this.#integrity = dependencies.integrity;
    this.#tenants = dependencies.tenants;
    this.#dataKeys = dependencies.dataKeys;
    this.#gate = dependencies.gate;
    this.#options = dependencies.options;
  }

  async seal(ctx: RequestContext, tenantId: string, reason: string): Promise<SealView> {
    const operation = await this.#gate.begin(ctx, "tenant.seal", { tenantId });
    return operation.change(
      async () => {
        await this.#liveTenant(tenantId);
        const view = await this.#sealScope(ctx, tenantId, reason);
        this.#dataKeys.forgetTenant(tenantId);
        return view;
      },
      () => ({ reason }),
    );
  }

  async sealAll(ctx: RequestContext, reason: string): Promise<SealView> {
    const operation = await this.#gate.begin(ctx, "system.seal");
    return operation.change(
      () => this.#sealScope(ctx, GLOBAL_SEAL_SCOPE, reason),
      () => ({ reason }),
    );
  }

  unseal(ctx: RequestContext, tenantId: string, reason: string): Promise<{ view: SealView; done: boolean }> {
    return this.#unsealScope(ctx, tenantId, reason);
  }

  unsealAll(ctx: RequestContext, reason: string): Promise<{ view: SealView; done: boolean }> {
    return this.#unsealScope(ctx, GLOBAL_SEAL_SCOPE, reason);
  }

  /** A seal is idempotent, but it always writes: a re-seal withdraws a pending unseal request. */
  #sealScope(ctx: RequestContext, scope: string, reason: string): Promise<SealView> {
    return this.#write(scope, (current) => ({
      scope,
      sealed: true,
      reason,
      changedBy: ctx.principal.actor,
      changedAt: now(),
      revision: (current?.revision ?? 0) + 1,
    }));
  }

  /**
   * Unsealing what is not sealed answers its state and changes nothing. With a second admin required,
   * the first call records the request (done false) and a call by a different admin completes it.
   */
  async #unsealScope(
    ctx: RequestContext,
    scope: string,
    reason: string,
  ): Promise<{ view: SealView; done: boolean }> {
    const operation =
      scope === GLOBAL_SEAL_SCOPE
        ? await this.#gate.begin(ctx, "system.unseal")
        : await this.#gate.begin(ctx, "tenant.unseal", { tenantId: scope });
    const me = ctx.principal.actor;
    let done = true;
    const view = await operation.change(
      async () => {
        // A deleted tenant may still be unsealed: the seal item outlives the tenant's partition, and
        // lifting it is what lets its reads answer 410 tenant_deleted instead of 423.
        if (scope !== GLOBAL_SEAL_SCOPE && (await this.#tenants.get(scope)) === undefined) {
          throw new NotFoundError(`tenant ${scope} does not exist`);
        }
        return this.#write(scope, (current, failedIntegrity) => {
          if (current?.sealed !== true && !failedIntegrity) {
            done = true;
            return undefined;
          }
          const requester = current?.unsealRequestedBy;
          if (this.#options.unsealNeedsSecondAdmin && requester === undefined) {
            done = false;
            return {
              ...(current ?? unknownSeal(scope, me)),
              unsealRequestedBy: me,
              revision: (current?.revision ?? 0) + 1,
            };
          }
          if (this.#options.unsealNeedsSecondAdmin && requester === me) {
            throw new ConflictError(
              `the unseal of ${scope} was requested by this token; a different admin must approve it`,
            );
          }
          done = true;
          return {
            scope,
            sealed: false,
            reason,
            changedBy: me,
            changedAt: now(),
            revision: (current?.revision ?? 0) + 1,
          };
        });
      },
      () => ({ reason, detail: done ? "unsealed" : "unseal requested; awaiting a second admin" }),
    );
    return { view, done };
  }

  /** A deleted tenant has nothing left to seal: its DEKs are gone, and its partition is only the tombstone. */
  async #liveTenant(tenantId: string): Promise<void> {
    const tenant = await this.#tenants.get(tenantId);
    if (tenant === undefined) throw new NotFoundError(`tenant ${tenantId} does not exist`);
    if (tenant.deletedAt !== undefined) throw new TenantDeletedError(`tenant ${tenantId} was deleted`);
  }

  /**
   * Reads the item, lets `next` decide (undefined: leave it), and writes over exactly what it read.
   * An item that failed its check is replaced only by what `next` makes of it as sealed.
   */
  async #write(
    scope: string,
    next: (current: SealRecord | undefined, failedIntegrity: boolean) => SealRecord | undefined,
  ): Promise<SealView> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
      const found = await this.#guard.read(scope);
      const record = next(found.record, found.failedIntegrity);
      if (record === undefined) return viewOf(found.record ?? unsealedView(scope));
      const seal = await this.#integrity.seal(canonicalSeal(record));
      if (await this.#seals.put(record, seal, found.replaces)) return viewOf(record);
    }
    throw new StoreUnavailableError(`the seal of ${scope} kept changing under this request; retry`);
  }
}

/** What an item that failed its check is taken for: sealed, by nobody known. */
function unknownSeal(scope: string, requester: string): SealRecord {
  return {
    scope,
    sealed: true,
    reason: "seal item failed its integrity check",
    changedBy: requester,
    changedAt: now(),
    revision: 0,
  };
}

function unsealedView(scope: string): SealRecord {
  return { scope, sealed: false, reason: "", changedBy: "", changedAt: "", revision: 0 };
}

function viewOf(record: SealRecord): SealView {
  return {
    scope: record.scope,
    sealed: record.sealed,
    reason: record.reason,
    changedBy: record.changedBy,
    changedAt: record.changedAt,
    ...(record.unsealRequestedBy === undefined ? {} : { unsealRequestedBy: record.unsealRequestedBy }),
  };
}
