import { envelopeDekVersion } from "../crypto/envelope.ts";
import type { Keyring } from "../crypto/keyring.ts";
import { ConflictError, NotFoundError, StrongboxError } from "../domain/errors.ts";
import { type RetiredDataKey, SYSTEM_SCOPE, type Tenant, type WrappedDataKey } from "../domain/types.ts";
import type { Logger } from "../observability/logger.ts";
import type { CheckpointedWork, CheckpointRepository } from "../storage/checkpoint-repository.ts";
import type { Reseal, SealedItem, SecretRepository } from "../storage/secret-repository.ts";
import type { TenantRepository } from "../storage/tenant-repository.ts";
import type { AuditService } from "./audit-service.ts";
import { now, type RequestContext } from "./context.ts";
import type { DataKeys } from "./data-keys.ts";
import type { Sealer, SealingKey } from "./sealer.ts";

const MAX_TENANT_WRITE_ATTEMPTS = 5;
const REWRAP: CheckpointedWork = "kek-rewrap";
const sweepOf = (tenantId: string): CheckpointedWork => ({ sweepOf: tenantId });
/** A sweep re-reads an item a writer overtook this many times before leaving it to a later pass. */
const MAX_RESEAL_ATTEMPTS = 5;

/**
 * A tenant's re-encryption sweep runs in passes over every sealed item. The first re-seals whatever is
 * older than the target DEK. A DEK version is retired only after two more passes: a `settle` pass that
 * starts once writers can no longer hold a snapshot of the old DEK (the grace period after the
 * rotation), after which no head is written under an old DEK, and a `verify` pass that starts half a
 * grace period after the settle pass ended, after which no archive copy of an old head can still land.
 * The verify pass sees, and re-seals, everything; so after it nothing uses an older DEK.
 */
export type SweepPhase = "reencrypt" | "settle" | "verify" | "done";

export interface SweepState {
  readonly tenantId: string;
  readonly targetDekVersion: number;
  readonly phase: SweepPhase;
  /** The last sort key the current pass has finished; absent at the start of a pass. */
  readonly cursor?: string;
  readonly startedAt: string;
  readonly updatedAt: string;
  readonly passStartedAt?: string;
  readonly lastPassEndedAt?: string;
  readonly finishedAt?: string;
  /** Items looked at and re-sealed over all passes; `lostToWriters` counts re-seals a writer overtook. */
  readonly scanned: number;
  readonly resealed: number;
  readonly lostToWriters: number;
  /** Ciphertexts per DEK version seen so far in the current pass, after its re-seals. */
  readonly passCounts: Record<string, number>;
  /** Items looked at and re-sealed in the current pass. */
  readonly passScanned?: number;
  readonly passResealed?: number;
  /** One line per finished pass, for progress reports and throughput figures. */
  readonly completedPasses?: readonly {
    readonly phase: SweepPhase;
    readonly startedAt: string;
    readonly endedAt: string;
    readonly scanned: number;
    readonly resealed: number;
  }[];
  readonly retiredVersions?: number[];
}

export interface SweepRun {
  readonly tenantId: string;
  readonly state: SweepState;
  /** What this run did: re-sealed items, and whether it stopped for time, a lease, or the grace period. */
  readonly resealed: number;
  readonly stoppedBecause: "done" | "deadline" | "grace" | "busy";
}

export interface RewrapState {
  readonly targetKekId: string;
  readonly phase: "rewrap" | "done";
  /** The last tenant id the re-wrap has finished. */
  readonly cursor?: string;
  readonly startedAt: string;
  readonly updatedAt: string;
  readonly finishedAt?: string;
  readonly tenantsScanned: number;
  readonly rewrapped: number;
  /** DEKs per KEK id after this pass's re-wraps, for the tenants scanned so far. */
  readonly dataKeysByKek: Record<string, number>;
  /** DEKs that could not be re-wrapped (their KEK is not configured, or KMS refused), by KEK id. */
  readonly failedByKek: Record<string, number>;
  readonly deregistered?: string[];
}

export interface RewrapRun {
  readonly state: RewrapState;
  readonly rewrapped: number;
  readonly stoppedBecause: "done" | "deadline" | "busy";
}

export interface KekReport {
  readonly activeKekId: string;
  readonly keks: readonly {
    readonly kekId: string;
    readonly configured: "active" | "previous" | "no";
    readonly dataKeys: number;
    readonly registered: boolean;
    readonly mayBeRemoved: boolean;
    readonly status: string;
  }[];
  readonly rewrap?: RewrapState;
}

export interface TenantRotationStatus {
  readonly tenantId: string;
  readonly currentDekVersion: number;
  readonly dataKeys: readonly { version: number; kekId: string; createdAt: string; items: number }[];
  readonly retiredDataKeys: readonly RetiredDataKey[];
  /** Live count of ciphertexts per DEK version, by a scan made for this answer. */
  readonly itemsByDekVersion: Record<string, number>;
  readonly sweep?: SweepState;
}

export interface Deadline {
  /** True once the caller's time budget is spent; work stops at the next checkpoint. */
  expired(): boolean;
}

export const SYSTEM_ACTOR = { actor: "rotation", role: "system" } as const;

const increment = (counts: Record<string, number>, key: string | number, by = 1) => {
  counts[String(key)] = (counts[String(key)] ?? 0) + by;
};

/** Key rotation: DEK versions per tenant with their re-encryption sweeps, and the KEK re-wrap. */
export class RotationService {
  constructor(
    private readonly keyring: Keyring,
    private readonly tenants: TenantRepository,
    private readonly secrets: SecretRepository,
    private readonly rotations: CheckpointRepository,
    private readonly dataKeys: DataKeys,
    private readonly sealer: Sealer,
    private readonly audit: AuditService,
    private readonly logger: Logger,
    private readonly options: {
      /** How long after a DEK rotation writers may still commit under the old DEK; see Sealer. */
      readonly retireGraceMs: number;
      readonly leaseMs: number;
      readonly pageSize: number;
    },
  ) {}

  /** Creates the next DEK version; new writes use it at once, and a sweep is queued for the rest. */
  async rotateDek(ctx: RequestContext, tenantId: string): Promise<{ tenantId: string; dekVersion: number }> {
    const target = { tenantId, action: "tenant.rotate-dek" } as const;
    await this.audit.authorize(ctx, "dek:rotate", target);
    return this.audit.aroundChange(
      this.audit.entry(ctx, target),
      async () => {
        for (let attempt = 0; attempt < MAX_TENANT_WRITE_ATTEMPTS; attempt += 1) {
          const tenant = await this.tenants.get(tenantId);
          if (tenant === undefined) throw new NotFoundError(`tenant ${tenantId} does not exist`);
          const version =
            Math.max(
              tenant.currentDekVersion,
              ...tenant.dataKeys.map((key) => key.version),
              ...(tenant.retiredDataKeys ?? []).map((key) => key.version),
            ) + 1;
          const wrapped = await this.dataKeys.generate(tenantId, version);
          // Queued before the DEK exists: a crash in between leaves a sweep with nothing to do, never a
          // DEK version nobody sweeps towards.
          await this.rotations.addPendingSweep(tenantId);
          const at = now();
          const next: Tenant = {
            ...tenant,
            currentDekVersion: version,
            dataKeys: [...tenant.dataKeys, wrapped],
            dekRotatedAt: at,
          };
          if (await this.tenants.replace(next, tenant.revision ?? 0)) {
            await this.rotations.start(sweepOf(tenantId), newSweep(tenantId, version, at));
            return { tenantId, dekVersion: version };
          }
        }
        throw new ConflictError(`tenant ${tenantId} was changed concurrently; retry the rotation`);
      },
      ({ dekVersion }) => ({ detail: `DEK v${dekVersion} created; re-encryption sweep queued` }),
    );
  }

  async status(ctx: RequestContext, tenantId: string): Promise<TenantRotationStatus> {
    await this.audit.authorize(ctx, "rotation:read", { tenantId, action: "rotation.read" });
    const tenant = await this.tenants.get(tenantId);
    if (tenant === undefined) throw new NotFoundError(`tenant ${tenantId} does not exist`);
    const counts = await this.countByDekVersion(tenantId);
    const sweep = await this.rotations.get<SweepState>(sweepOf(tenantId));
    await this.audit.record(this.audit.entry(ctx, { tenantId, action: "rotation.read", outcome: "success" }));
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

  /** Ciphertexts per DEK version, current and pending values and archived versions alike. */
  async countByDekVersion(tenantId: string): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    let after: string | undefined;
    do {
      const page = await this.secrets.scanSealed(tenantId, after, 500);
      for (const item of page.items) {
        for (const sealed of [item.current, item.pending]) {
          if (sealed !== undefined) increment(counts, envelopeDekVersion(sealed.envelope));
        }
      }
      after = page.last;
    } while (after !== undefined);
    return counts;
  }

  /** Tenants whose sweep has not finished, for the scheduled runner. */
  pendingSweeps(): Promise<string[]> {
    return this.rotations.pendingSweeps();
  }

  /**
   * Advances a tenant's sweep until it is done or the deadline passes, checkpointing after every page.
   * Safe to run anywhere, any number of times, and to kill at any point: every write is conditional on
   * what was read, and the checkpoint only ever records work that is already durable.
   */
  async runSweep(tenantId: string, owner: string, deadline: Deadline, requestId: string): Promise<SweepRun> {
    const key = sweepOf(tenantId);
    const tenant = await this.tenants.get(tenantId);
    if (tenant === undefined) {
      await this.rotations.removePendingSweep(tenantId);
      throw new NotFoundError(`tenant ${tenantId} does not exist`);
    }
    let state = await this.rotations.get<SweepState>(key);
    if (state === undefined || state.targetDekVersion < tenant.currentDekVersion) {
      // The rotation died between creating the DEK and recording its sweep: start the sweep now.
      await this.rotations.start(key, newSweep(tenantId, tenant.currentDekVersion, now()));
      state = await this.rotations.get<SweepState>(key);
    }
    if (state === undefined) throw new ConflictError(`sweep of ${tenantId} could not be started`);
    if (state.phase === "done") {
      await this.rotations.removePendingSweep(tenantId);
      return { tenantId, state, resealed: 0, stoppedBecause: "done" };
    }
    if (!(await this.rotations.acquire(key, owner, Date.now(), this.options.leaseMs))) {
      return { tenantId, state, resealed: 0, stoppedBecause: "busy" };
    }
    const entry = { tenantId, action: "tenant.reencrypt" as const, ...SYSTEM_ACTOR, requestId };
    try {
      return await this.audit.aroundChange(
        entry,
        () => this.#advanceSweep(tenant, state, owner, deadline),
        (run) => ({
          detail: `DEK v${run.state.targetDekVersion} sweep: phase ${run.state.phase}, re-sealed ${run.resealed} this run, stopped: ${run.stoppedBecause}`,
        }),
      );
    } finally {
      await this.rotations.release(key, owner).catch(() => undefined);
    }
  }

  async #advanceSweep(
    tenant: Tenant,
    initial: SweepState,
    owner: string,
    deadline: Deadline,
  ): Promise<SweepRun> {
    const tenantId = tenant.tenantId;
    const key = sweepOf(tenantId);
    let state = initial;
    let resealedThisRun = 0;
    const rotatedAtMs = Date.parse(tenant.dekRotatedAt ?? tenant.createdAt);
    while (state.phase !== "done") {
      if (deadline.expired())
        return { tenantId, state, resealed: resealedThisRun, stoppedBecause: "deadline" };
      if (state.cursor === undefined && state.passStartedAt === undefined) {
        const earliest = this.#earliestPassStart(state, rotatedAtMs);
        if (Date.now() < earliest)
          return { tenantId, state, resealed: resealedThisRun, stoppedBecause: "grace" };
        state = { ...state, passStartedAt: now(), passCounts: {}, passScanned: 0, passResealed: 0 };
      }
      let sealing = await this.sealer.sealingKey(tenantId);
      const freshKey = async () => {
        if (!sealing.fresh()) sealing = await this.sealer.sealingKey(tenantId);
        return sealing;
      };
      const page = await this.secrets.scanSealed(tenantId, state.cursor, this.options.pageSize);
      const counts = { ...state.passCounts };
      let resealed = 0;
      let lost = 0;
      // Items are independent, so a page's re-seals go out together; the checkpoint waits for all.
      const outcomes = await Promise.all(
        page.items.map((item) => this.#resealItem(tenantId, item, state.targetDekVersion, freshKey)),
      );
      for (const outcome of outcomes) {
        resealed += outcome.resealed ? 1 : 0;
        lost += outcome.lost;
        for (const version of outcome.versions) increment(counts, version);
      }
      resealedThisRun += resealed;
      state = {
        ...state,
        scanned: state.scanned + page.items.length,
        resealed: state.resealed + resealed,
        passScanned: (state.passScanned ?? 0) + page.items.length,
        passResealed: (state.passResealed ?? 0) + resealed,
        lostToWriters: state.lostToWriters + lost,
        passCounts: counts,
        updatedAt: now(),
      };
      if (page.last !== undefined) {
        state = { ...state, cursor: page.last };
      } else {
        state = await this.#endPass(tenantId, state);
      }
      if (!(await this.rotations.checkpoint(key, owner, state, Date.now() + this.options.leaseMs))) {
        return { tenantId, state, resealed: resealedThisRun, stoppedBecause: "busy" };
      }
    }
    await this.rotations.removePendingSweep(tenantId);
    return { tenantId, state, resealed: resealedThisRun, stoppedBecause: "done" };
  }

  #earliestPassStart(state: SweepState, rotatedAtMs: number): number {
    if (state.phase === "reencrypt") return 0;
    if (state.phase === "settle") return rotatedAtMs + this.options.retireGraceMs;
    return Date.parse(state.lastPassEndedAt ?? state.updatedAt) + this.options.retireGraceMs / 2;
  }

  async #endPass(tenantId: string, state: SweepState): Promise<SweepState> {
    const { cursor: _cursor, passStartedAt: started, passScanned, passResealed, ...rest } = state;
    const endedAt = now();
    const pass = {
      phase: state.phase,
      startedAt: started ?? endedAt,
      endedAt,
      scanned: passScanned ?? 0,
      resealed: passResealed ?? 0,
    };
    const ended = {
      ...rest,
      lastPassEndedAt: endedAt,
      completedPasses: [...(state.completedPasses ?? []), pass],
    };
    if (state.phase === "reencrypt") return { ...ended, phase: "settle" };
    if (state.phase === "settle") return { ...ended, phase: "verify" };
    // Retirement needs the verify pass's own proof: anything it could not move (a writer kept beating
    // its re-seal) sends the sweep round settle and verify again instead.
    const left = Object.entries(state.passCounts).filter(
      ([version, count]) => Number(version) < state.targetDekVersion && count > 0,
    );
    if (left.length > 0) {
      this.logger.warn("DEK sweep verify pass found older ciphertext; verifying again", {
        tenantId,
        versions: left.map(([version]) => Number(version)),
      });
      return { ...ended, phase: "settle" };
    }
    const retiredVersions = await this.#retireBelow(tenantId, state.targetDekVersion);
    return { ...ended, phase: "done", finishedAt: now(), retiredVersions };
  }

  /** Destroys the wrapped form of every DEK version below `target`: one conditional tenant write. */
  async #retireBelow(tenantId: string, target: number): Promise<number[]> {
    for (let attempt = 0; attempt < MAX_TENANT_WRITE_ATTEMPTS; attempt += 1) {
      const tenant = await this.tenants.get(tenantId);
      if (tenant === undefined) return [];
      const old = tenant.dataKeys.filter((key) => key.version < target);
      if (old.length === 0) return [];
      const retiredAt = now();
      const next: Tenant = {
        ...tenant,
        dataKeys: tenant.dataKeys.filter((key) => key.version >= target),
        retiredDataKeys: [
          ...(tenant.retiredDataKeys ?? []),
          ...old.map(({ version, kekId, createdAt }) => ({ version, kekId, createdAt, retiredAt })),
        ],
      };
      if (await this.tenants.replace(next, tenant.revision ?? 0)) {
        for (const key of old) this.dataKeys.forget(tenantId, key.version);
        this.logger.info("DEK versions retired", { tenantId, versions: old.map((key) => key.version) });
        return old.map((key) => key.version);
      }
    }
    throw new ConflictError(`tenant ${tenantId} kept changing; DEK retirement will be retried`);
  }

  /**
   * Re-seals what is older than the target; reports the DEK versions the item holds afterwards. A lost
   * re-seal proves only that a writer got there first, not what it wrote (a policy or label change
   * carries the envelopes it read), so the item is read again and looked at afresh.
   */
  async #resealItem(
    tenantId: string,
    item: SealedItem,
    target: number,
    freshKey: () => Promise<SealingKey>,
  ): Promise<{ resealed: boolean; lost: number; versions: number[] }> {
    let current: SealedItem | undefined = item;
    let lost = 0;
    while (current !== undefined) {
      const sealing = await freshKey();
      const outcome = await this.#resealWith(tenantId, current, target, sealing);
      if (outcome === "stale") continue;
      if (outcome !== "lost") return { ...outcome, lost };
      lost += 1;
      if (lost >= MAX_RESEAL_ATTEMPTS) break;
      current = await this.secrets.getSealed(tenantId, current.sk);
    }
    // Gone (a deleted tenant's leftovers) or still contended: counted as it was last seen, so a verify
    // pass that meets it does not retire its DEK.
    return { resealed: false, lost, versions: current === undefined ? [] : dekVersionsOf(current) };
  }

  async #resealWith(
    tenantId: string,
    item: SealedItem,
    target: number,
    sealing: SealingKey,
  ): Promise<{ resealed: boolean; versions: number[] } | "stale" | "lost"> {
    const currentDek = envelopeDekVersion(item.current.envelope);
    const pendingDek = item.pending === undefined ? undefined : envelopeDekVersion(item.pending.envelope);
    const stale = (dek: number | undefined) => dek !== undefined && dek < target;
    if (!stale(currentDek) && !stale(pendingDek)) return { resealed: false, versions: dekVersionsOf(item) };
    const change: { -readonly [K in keyof Reseal]: Reseal[K] } = {};
    if (stale(currentDek)) {
      const value = await this.sealer.open(tenantId, item.name, item.current);
      change.envelope = {
        from: item.current.envelope,
        to: sealing.seal(item.name, item.current.version, value),
      };
    }
    if (item.pending !== undefined && stale(pendingDek)) {
      const value = await this.sealer.open(tenantId, item.name, item.pending);
      change.pendingEnvelope = {
        from: item.pending.envelope,
        to: sealing.seal(item.name, item.pending.version, value),
      };
    }
    // A slow re-seal must not commit under a DEK snapshot that may have been superseded meanwhile.
    if (!sealing.fresh()) return "stale";
    if (!(await this.secrets.reseal(tenantId, item.sk, change))) return "lost";
    const versions = [
      change.envelope === undefined ? currentDek : sealing.dekVersion,
      ...(pendingDek === undefined
        ? []
        : [change.pendingEnvelope === undefined ? pendingDek : sealing.dekVersion]),
    ];
    return { resealed: true, versions };
  }

  /** Starts (or restarts) the re-wrap of every DEK under the active KEK, then works on it for a while. */
  async startRewrap(ctx: RequestContext, owner: string, deadline: Deadline): Promise<RewrapRun> {
    const target = { tenantId: SYSTEM_SCOPE, action: "kek.rewrap" } as const;
    await this.audit.authorize(ctx, "kek:manage", target);
    return this.audit.aroundChange(
      this.audit.entry(ctx, target),
      async () => {
        const active = await this.activeKekId();
        const existing = await this.rotations.get<RewrapState>(REWRAP);
        if (existing === undefined || existing.phase === "done" || existing.targetKekId !== active) {
          await this.rotations.start(REWRAP, newRewrap(active));
        }
        return this.runRewrap(owner, deadline);
      },
      (run) => ({
        detail: `re-wrapped ${run.rewrapped} DEKs under ${run.state.targetKekId}; ${run.state.phase}`,
      }),
    );
  }

  /** The active KEK as stored DEKs name it (a KMS alias resolves to its key ARN). */
  async activeKekId(): Promise<string> {
    const [active] = await this.keyring.probe();
    return active ?? this.keyring.activeKekId;
  }

  /** Advances a started re-wrap until it is done or the deadline passes. */
  async runRewrap(owner: string, deadline: Deadline): Promise<RewrapRun> {
    let state: RewrapState | undefined = await this.rotations.get<RewrapState>(REWRAP);
    if (state === undefined) throw new NotFoundError("no KEK re-wrap has been started");
    if (state.phase === "done") return { state, rewrapped: 0, stoppedBecause: "done" };
    if (!(await this.rotations.acquire(REWRAP, owner, Date.now(), this.options.leaseMs))) {
      return { state, rewrapped: 0, stoppedBecause: "busy" };
    }
    let rewrappedThisRun = 0;
    try {
      // Registered before any DEK is wrapped by it, like a new tenant's KEK.
      await this.tenants.registerKek(state.targetKekId);
      await this.tenants.ensureDirectory();
      while (state.phase !== "done") {
        if (deadline.expired()) return { state, rewrapped: rewrappedThisRun, stoppedBecause: "deadline" };
        const page = await this.tenants.scan(state.cursor, this.options.pageSize);
        const byKek: Record<string, number> = { ...state.dataKeysByKek };
        const failed: Record<string, number> = { ...state.failedByKek };
        let rewrapped = 0;
        for (const tenant of page.tenants) {
          const outcome = await this.#rewrapTenant(tenant.tenantId, state.targetKekId);
          rewrapped += outcome.rewrapped;
          for (const kekId of outcome.kekIds) increment(byKek, kekId);
          for (const kekId of outcome.failed) increment(failed, kekId);
        }
        rewrappedThisRun += rewrapped;
        const { cursor: _cursor, ...rest } = state;
        state = {
          ...rest,
          tenantsScanned: state.tenantsScanned + page.tenants.length,
          rewrapped: state.rewrapped + rewrapped,
          dataKeysByKek: byKek,
          failedByKek: failed,
          updatedAt: now(),
          ...(page.last === undefined ? {} : { cursor: page.last }),
        };
        if (page.last === undefined) state = await this.#finishRewrap(state);
        if (!(await this.rotations.checkpoint(REWRAP, owner, state, Date.now() + this.options.leaseMs))) {
          return { state, rewrapped: rewrappedThisRun, stoppedBecause: "busy" };
        }
      }
      return { state, rewrapped: rewrappedThisRun, stoppedBecause: "done" };
    } finally {
      await this.rotations.release(REWRAP, owner).catch(() => undefined);
    }
  }

  /**
   * Every tenant has been visited and re-wrapped, so no DEK should depend on another KEK any more,
   * except those that failed. A KEK leaves the registry (and start-up stops asking for it) only if a
   * fresh count over the whole directory, made now, also finds no DEK wrapped by it: a tenant the pass
   * missed, or one re-wrapped back by an older deployment meanwhile, keeps its KEK registered.
   */
  async #finishRewrap(state: RewrapState): Promise<RewrapState> {
    const registered = await this.tenants.registeredKeks();
    const recount = await this.#dataKeysByKek();
    const deregistered = registered.filter(
      (kekId) =>
        kekId !== state.targetKekId &&
        (state.failedByKek[kekId] ?? 0) === 0 &&
        (state.dataKeysByKek[kekId] ?? 0) === 0 &&
        (recount[kekId] ?? 0) === 0,
    );
    for (const kekId of deregistered) await this.tenants.deregisterKek(kekId);
    return { ...state, dataKeysByKek: recount, phase: "done", finishedAt: now(), deregistered };
  }

  /** DEKs per KEK id over every tenant in the directory (backfilled first), counted live. */
  async #dataKeysByKek(): Promise<Record<string, number>> {
    await this.tenants.ensureDirectory();
    const counts: Record<string, number> = {};
    let after: string | undefined;
    do {
      const page = await this.tenants.scan(after, 200);
      for (const tenant of page.tenants) for (const key of tenant.dataKeys) increment(counts, key.kekId);
      after = page.last;
    } while (after !== undefined);
    return counts;
  }

  async #rewrapTenant(
    tenantId: string,
    active: string,
  ): Promise<{ rewrapped: number; kekIds: string[]; failed: string[] }> {
    for (let attempt = 0; attempt < MAX_TENANT_WRITE_ATTEMPTS; attempt += 1) {
      const tenant = await this.tenants.get(tenantId);
      if (tenant === undefined) return { rewrapped: 0, kekIds: [], failed: [] };
      const failed: string[] = [];
      let rewrapped = 0;
      const dataKeys: WrappedDataKey[] = [];
      for (const key of tenant.dataKeys) {
        if (key.kekId === active) {
          dataKeys.push(key);
          continue;
        }
        try {
          const wrapped = await this.keyring.rewrap(
            { kekId: key.kekId, ciphertext: key.ciphertext },
            { tenantId, dekVersion: key.version },
          );
          dataKeys.push({ ...key, kekId: wrapped.kekId, ciphertext: wrapped.ciphertext });
          rewrapped += 1;
        } catch (error) {
          // Logged by code only: the message may name keys but the DEK itself never reaches here.
          this.logger.error("DEK could not be re-wrapped", {
            tenantId,
            dekVersion: key.version,
            kekId: key.kekId,
            code: error instanceof StrongboxError ? error.code : "internal_error",
          });
          failed.push(key.kekId);
          dataKeys.push(key);
        }
      }
      if (rewrapped === 0) return { rewrapped, kekIds: dataKeys.map((key) => key.kekId), failed };
      if (await this.tenants.replace({ ...tenant, dataKeys }, tenant.revision ?? 0)) {
        return { rewrapped, kekIds: dataKeys.map((key) => key.kekId), failed };
      }
    }
    throw new ConflictError(`tenant ${tenantId} kept changing during its re-wrap; the re-wrap resumes there`);
  }

  /** DEKs per KEK over every tenant, counted live, with whether each KEK may now be removed. */
  async kekReport(ctx: RequestContext): Promise<KekReport> {
    const target = { tenantId: SYSTEM_SCOPE, action: "kek.read" } as const;
    await this.audit.authorize(ctx, "kek:manage", target);
    const active = await this.activeKekId();
    const configured = await this.keyring.probe();
    const counts = await this.#dataKeysByKek();
    const registered = await this.tenants.registeredKeks();
    const ids = [...new Set([active, ...configured, ...registered, ...Object.keys(counts)])];
    const rewrap = await this.rotations.get<RewrapState>(REWRAP);
    await this.audit.record(this.audit.entry(ctx, { ...target, outcome: "success" }));
    return {
      activeKekId: active,
      keks: ids.map((kekId) => {
        const dataKeys = counts[kekId] ?? 0;
        const role = kekId === active ? "active" : configured.includes(kekId) ? "previous" : "no";
        const mayBeRemoved = role !== "active" && dataKeys === 0 && !registered.includes(kekId);
        const status =
          role === "active"
            ? `active KEK: ${dataKeys} DEKs wrapped by it`
            : mayBeRemoved
              ? `no DEK depends on KEK ${kekId}: it may be removed from the configuration`
              : dataKeys > 0
                ? `${dataKeys} DEKs still depend on KEK ${kekId}: keep it configured and run the re-wrap`
                : `KEK ${kekId} is still registered: keep it until a re-wrap finishes`;
        return {
          kekId,
          configured: role,
          dataKeys,
          registered: registered.includes(kekId),
          mayBeRemoved,
          status,
        };
      }),
      ...(rewrap === undefined ? {} : { rewrap }),
    };
  }

  async rewrapState(): Promise<RewrapState | undefined> {
    return this.rotations.get<RewrapState>(REWRAP);
  }
}

const dekVersionsOf = (item: SealedItem): number[] => [
  envelopeDekVersion(item.current.envelope),
  ...(item.pending === undefined ? [] : [envelopeDekVersion(item.pending.envelope)]),
];

function newSweep(tenantId: string, targetDekVersion: number, at: string): SweepState {
  return {
    tenantId,
    targetDekVersion,
    phase: "reencrypt",
    startedAt: at,
    updatedAt: at,
    scanned: 0,
    resealed: 0,
    lostToWriters: 0,
    passCounts: {},
  };
}

function newRewrap(targetKekId: string): RewrapState {
  const at = now();
  return {
    targetKekId,
    phase: "rewrap",
    startedAt: at,
    updatedAt: at,
    tenantsScanned: 0,
    rewrapped: 0,
    dataKeysByKek: {},
    failedByKek: {},
  };
}
