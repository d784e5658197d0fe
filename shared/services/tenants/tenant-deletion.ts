import type { ChainHeads } from "../../domain/audit-chain.ts";
import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import {
  canonicalCertificate,
  type DeletionCertificate,
  type DeletionCounts,
  type UnsealedCertificate,
} from "../../domain/deletion-certificate.ts";
import { ConflictError, NotFoundError } from "../../domain/errors.ts";
import type { ItemIntegrity } from "../../domain/item-integrity.ts";
import type { DataKeyForgetter } from "../../domain/sealing.ts";
import { now } from "../../domain/time.ts";
import type { Tenant } from "../../domain/types.ts";
import type { Deadline } from "../../domain/work.ts";
import type { CheckpointRepository } from "../../storage/checkpoint-repository.ts";
import { type DeletionRepository, kindOfSortKey } from "../../storage/deletion-repository.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";

/** Shredding retries its conditional write of the tenant item this many times against concurrent changes. */
const SHRED_ATTEMPTS = 5;

/**
 * The sweep's checkpoint. It counts first (`census`) and removes after (`remove`), each phase
 * checkpointed per page: removal never has to count what it deletes, so a sweep that dies part-way
 * through a page and resumes from its last checkpoint still reports exact counts.
 */
interface DeletionSweepState {
  readonly phase: "census" | "remove" | "done";
  readonly cursor?: string;
  readonly counts: DeletionCounts;
  readonly requestedBy: string;
  readonly shreddedAt: string;
  readonly dekVersionsDestroyed: readonly number[];
}

export type DeletionOutcome =
  | { readonly status: "deleted"; readonly certificate: DeletionCertificate }
  | {
      readonly status: "deleting";
      readonly phase: DeletionSweepState["phase"];
      readonly counts: DeletionCounts;
      readonly stoppedBecause: "deadline" | "busy";
    };

export interface CertificateCheck {
  readonly certificate: DeletionCertificate;
  readonly verified: boolean;
}

const ZERO: DeletionCounts = { secrets: 0, versions: 0, other: 0 };

/**
 * Deletes a tenant by crypto-shredding. The first write removes every wrapped DEK from the tenant item
 * and marks it deleted, so from that instant no ciphertext of the tenant can be opened by any instance
 * (reads check the mark in the round trip they already make, and cached DEKs are dropped here). Then a
 * checkpointed sweep removes the partition's items, the tenant item staying as a tombstone and the audit
 * chain (its own partition) untouched. It ends with a certificate MAC'd under the item-integrity key.
 */
export class TenantDeletion {
  readonly #tenants: TenantRepository;
  readonly #deletions: DeletionRepository;
  readonly #checkpoints: CheckpointRepository;
  readonly #dataKeys: DataKeyForgetter;
  readonly #integrity: ItemIntegrity;
  readonly #heads: ChainHeads;
  readonly #gate: OperationGate;
  readonly #options: { readonly leaseMs: number; readonly pageSize: number };

  constructor(deps: {
    tenants: TenantRepository;
    deletions: DeletionRepository;
    checkpoints: CheckpointRepository;
    dataKeys: DataKeyForgetter;
    integrity: ItemIntegrity;
    heads: ChainHeads;
    gate: OperationGate;
    options: { readonly leaseMs: number; readonly pageSize: number };
  }) {
    this.#tenants = deps.tenants;
    this.#deletions = deps.deletions;
    this.#checkpoints = deps.checkpoints;
    this.#dataKeys = deps.dataKeys;
    this.#integrity = deps.integrity;
    this.#heads = deps.heads;
    this.#gate = deps.gate;
    this.#options = deps.options;
  }

  /** Shreds (once), then sweeps until done or the deadline; asking again resumes from the checkpoint. */
  async delete(ctx: RequestContext, tenantId: string, deadline: Deadline): Promise<DeletionOutcome> {
    const operation = await this.#gate.begin(ctx, "tenant.delete", { tenantId });
    return operation.change(
      async () => {
        const existing = await this.#deletions.getCertificate(tenantId);
        if (existing !== undefined) return { status: "deleted", certificate: existing } as const;
        const tenant = await this.#shred(tenantId);
        const work = { deletionOf: tenantId };
        if ((await this.#checkpoints.get<DeletionSweepState>(work)) === undefined) {
          await this.#checkpoints.start<DeletionSweepState>(work, {
            phase: "census",
            counts: ZERO,
            requestedBy: ctx.principal.actor,
            shreddedAt: tenant.deletedAt ?? now(),
            dekVersionsDestroyed: tenant.destroyedDekVersions ?? [],
          });
          // A DEK sweep of this tenant has nothing left to re-seal, and its checkpoint goes with the partition.
          await this.#checkpoints.removePendingSweep(tenantId);
        }
        return this.#sweep(tenantId, ctx.requestId, deadline);
      },
      (outcome) =>
        outcome.status === "deleted"
          ? {
              detail: `deleted: DEK versions ${outcome.certificate.dekVersionsDestroyed.join(",") || "none"} destroyed; ${describeCounts(outcome.certificate.items)} removed`,
            }
          : { detail: `deleting: ${outcome.phase} phase, stopped by ${outcome.stoppedBecause}` },
    );
  }

  /** The tenant's certificate and whether its MAC verifies. */
  async certificate(ctx: RequestContext, tenantId: string): Promise<CertificateCheck> {
    const operation = await this.#gate.begin(ctx, "tenant.deletion-certificate", { tenantId });
    const check = await this.check(tenantId);
    if (check === undefined) {
      await operation.failed({ detail: "not_found" });
      throw new NotFoundError(`tenant ${tenantId} has no deletion certificate`);
    }
    await operation.succeeded({ detail: check.verified ? "verified" : "mac does not verify" });
    return check;
  }

  /** For the operator's command (`strongbox tenants certificate`), which has no request to gate. */
  async check(tenantId: string): Promise<CertificateCheck | undefined> {
    const certificate = await this.#deletions.getCertificate(tenantId);
    if (certificate === undefined) return undefined;
    return { certificate, verified: await this.verify(certificate) };
  }

  verify(certificate: DeletionCertificate): Promise<boolean> {
    const { mac, macKeyRef, ...content } = certificate;
    if (typeof mac !== "string" || typeof macKeyRef !== "string") return Promise.resolve(false);
    return this.#integrity.verify(canonicalCertificate(content), { mac, macKeyRef });
  }

  /** Destroys the wrapped DEKs and marks the tenant deleted in one conditional write; idempotent. */
  async #shred(tenantId: string): Promise<Tenant> {
    for (let attempt = 0; attempt < SHRED_ATTEMPTS; attempt += 1) {
      const tenant = await this.#tenants.get(tenantId);
      if (tenant === undefined) throw new NotFoundError(`tenant ${tenantId} does not exist`);
      if (tenant.deletedAt !== undefined) return tenant;
      const destroyed = [...tenant.dataKeys.map((key) => key.version)].sort((a, b) => a - b);
      const next: Tenant = {
        ...tenant,
        dataKeys: [],
        deletedAt: now(),
        destroyedDekVersions: destroyed,
      };
      if (await this.#tenants.replace(next, tenant.revision ?? 0)) {
        for (const version of destroyed) this.#dataKeys.forget(tenantId, version);
        return next;
      }
    }
    throw new ConflictError(`tenant ${tenantId} kept changing while it was being deleted; retry`);
  }

  async #sweep(tenantId: string, owner: string, deadline: Deadline): Promise<DeletionOutcome> {
    const work = { deletionOf: tenantId };
    let state = (await this.#checkpoints.get<DeletionSweepState>(work)) as DeletionSweepState;
    if (!(await this.#checkpoints.acquire(work, owner, Date.now(), this.#options.leaseMs))) {
      return { status: "deleting", phase: state.phase, counts: state.counts, stoppedBecause: "busy" };
    }
    try {
      while (state.phase !== "done") {
        if (deadline.expired()) {
          return { status: "deleting", phase: state.phase, counts: state.counts, stoppedBecause: "deadline" };
        }
        const page = await this.#deletions.sortKeys(tenantId, state.cursor, this.#options.pageSize);
        let counts = state.counts;
        if (state.phase === "census") {
          for (const sk of page.keys) {
            const kind = kindOfSortKey(sk);
            counts = { ...counts, [kind]: counts[kind] + 1 };
          }
        } else {
          for (const sk of page.keys) await this.#deletions.remove(tenantId, sk);
        }
        const { cursor: _cursor, ...rest } = state;
        state =
          page.last !== undefined
            ? { ...rest, counts, cursor: page.last }
            : { ...rest, counts, phase: state.phase === "census" ? "remove" : "done" };
        const leaseUntil = Date.now() + this.#options.leaseMs;
        if (!(await this.#checkpoints.checkpoint(work, owner, state, leaseUntil))) {
          return { status: "deleting", phase: state.phase, counts: state.counts, stoppedBecause: "busy" };
        }
      }
      return { status: "deleted", certificate: await this.#certify(tenantId, state) };
    } finally {
      await this.#checkpoints.release(work, owner).catch(() => undefined);
    }
  }

  async #certify(tenantId: string, state: DeletionSweepState): Promise<DeletionCertificate> {
    const head = await this.#heads.storedHead(tenantId);
    const content: UnsealedCertificate = {
      tenantId,
      requestedBy: state.requestedBy,
      shreddedAt: state.shreddedAt,
      completedAt: now(),
      dekVersionsDestroyed: state.dekVersionsDestroyed,
      items: state.counts,
      auditHead: head === undefined ? null : { sequence: head.sequence, hash: head.hash },
    };
    const seal = await this.#integrity.seal(canonicalCertificate(content));
    const certificate: DeletionCertificate = { ...content, ...seal };
    if (await this.#deletions.putCertificate(certificate)) return certificate;
    // Another runner certified first: its certificate is the one.
    return (await this.#deletions.getCertificate(tenantId)) ?? certificate;
  }
}

function describeCounts(counts: DeletionCounts): string {
  return `${counts.secrets} secrets, ${counts.versions} archived versions, ${counts.other} other items`;
}
