import { envelopeDekVersion } from "../../crypto/envelope.ts";
import type { OperationGate } from "../../domain/audit-trail.ts";
import { ConflictError, NotFoundError } from "../../domain/errors.ts";
import type { SweepRun, SweepState, SweepWork } from "../../domain/rotation.ts";
import type { SealingKey } from "../../domain/sealing.ts";
import { now } from "../../domain/time.ts";
import type { Tenant } from "../../domain/types.ts";
import type { Deadline } from "../../domain/work.ts";
import type { Logger } from "../../observability/logger.ts";
import type { CheckpointedWork, CheckpointRepository } from "../../storage/checkpoint-repository.ts";
import type { Reseal, SealedItem, SecretRepository } from "../../storage/secret-repository.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";
import { tally } from "./census.ts";
import { type DataKeys, MAX_TENANT_WRITE_ATTEMPTS } from "./data-keys.ts";
import { Pace } from "./pace.ts";
import type { Sealer } from "./sealer.ts";

/** A sweep re-reads an item a writer overtook this many times before leaving it to a later pass. */
const MAX_RESEAL_ATTEMPTS = 5;

/** Where a tenant's sweep keeps its checkpoint. */
export const sweepOf = (tenantId: string): CheckpointedWork => ({ sweepOf: tenantId });

export interface SweepOptions {
  /** How long after a DEK rotation writers may still commit under the old DEK; see Sealer. */
  readonly retireGraceMs: number;
  readonly leaseMs: number;
  readonly pageSize: number;
}

/**
 * A tenant's re-encryption sweep towards its current DEK, and the retirement of older DEK versions
 * once it has proved none is used (see SweepPhase).
 */
export class DekSweep implements SweepWork {
  readonly #tenants: TenantRepository;
  readonly #secrets: SecretRepository;
  readonly #checkpoints: CheckpointRepository;
  readonly #dataKeys: DataKeys;
  readonly #sealer: Sealer;
  readonly #gate: OperationGate;
  readonly #logger: Logger;
  readonly #options: SweepOptions;
  readonly #pace = new Pace();

  constructor(
    tenants: TenantRepository,
    secrets: SecretRepository,
    checkpoints: CheckpointRepository,
    dataKeys: DataKeys,
    sealer: Sealer,
    gate: OperationGate,
    logger: Logger,
    options: SweepOptions,
  ) {
    this.#tenants = tenants;
    this.#secrets = secrets;
    this.#checkpoints = checkpoints;
    this.#dataKeys = dataKeys;
    this.#sealer = sealer;
    this.#gate = gate;
    this.#logger = logger;
    this.#options = options;
  }

  /** Tenants whose sweep has not finished, for the scheduled runner. */
  pendingSweeps(): Promise<string[]> {
    return this.#checkpoints.pendingSweeps();
  }

  /**
   * Advances a tenant's sweep until it is done or the deadline passes, checkpointing after every page.
   * Safe to run anywhere, any number of times, and to kill at any point: every write is conditional on
   * what was read, and the checkpoint only ever records work that is already durable.
   */
  async runSweep(tenantId: string, owner: string, deadline: Deadline, requestId: string): Promise<SweepRun> {
    const key = sweepOf(tenantId);
    // Opened before the lease is taken, so nothing between taking the lease and its release can throw.
    const operation = this.#gate.system("tenant.reencrypt", { tenantId }, requestId);
    const tenant = await this.#tenants.get(tenantId);
    if (tenant === undefined) {
      await this.#checkpoints.removePendingSweep(tenantId);
      throw new NotFoundError(`tenant ${tenantId} does not exist`);
    }
    let state = await this.#checkpoints.get<SweepState>(key);
    if (state === undefined || state.targetDekVersion < tenant.currentDekVersion) {
      // The rotation died between creating the DEK and recording its sweep: start the sweep now.
      await this.#checkpoints.start(key, newSweep(tenantId, tenant.currentDekVersion, now()));
      state = await this.#checkpoints.get<SweepState>(key);
    }
    if (state === undefined) throw new ConflictError(`sweep of ${tenantId} could not be started`);
    if (state.phase === "done") {
      await this.#checkpoints.removePendingSweep(tenantId);
      return { tenantId, state, resealed: 0, stoppedBecause: "done" };
    }
    if (!(await this.#checkpoints.acquire(key, owner, Date.now(), this.#options.leaseMs))) {
      return { tenantId, state, resealed: 0, stoppedBecause: "busy" };
    }
    try {
      return await operation.change(
        () => this.#advanceSweep(tenant, state, owner, deadline),
        (run) => ({
          detail: `DEK v${run.state.targetDekVersion} sweep: phase ${run.state.phase}, re-sealed ${run.resealed} this run, stopped: ${run.stoppedBecause}`,
        }),
      );
    } finally {
      await this.#checkpoints.release(key, owner).catch(() => undefined);
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
      let sealing = await this.#sealer.sealingKey(tenantId);
      const freshKey = async () => {
        if (!sealing.fresh()) sealing = await this.#sealer.sealingKey(tenantId);
        return sealing;
      };
      const page = await this.#secrets.scanSealed(tenantId, state.cursor, this.#options.pageSize);
      const counts = { ...state.passCounts };
      let resealed = 0;
      let lost = 0;
      // Items are independent, but a page's re-seals go out paced, so that reads on the same event
      // loop are not queued behind them (see Pace); the checkpoint waits for all.
      const outcomes = await this.#pace.map(page.items, (item) =>
        this.#resealItem(tenantId, item, state.targetDekVersion, freshKey),
      );
      for (const outcome of outcomes) {
        resealed += outcome.resealed ? 1 : 0;
        lost += outcome.lost;
        for (const version of outcome.versions) tally(counts, version);
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
      if (!(await this.#checkpoints.checkpoint(key, owner, state, Date.now() + this.#options.leaseMs))) {
        return { tenantId, state, resealed: resealedThisRun, stoppedBecause: "busy" };
      }
    }
    await this.#checkpoints.removePendingSweep(tenantId);
    return { tenantId, state, resealed: resealedThisRun, stoppedBecause: "done" };
  }

  #earliestPassStart(state: SweepState, rotatedAtMs: number): number {
    if (state.phase === "reencrypt") return 0;
    if (state.phase === "settle") return rotatedAtMs + this.#options.retireGraceMs;
    return Date.parse(state.lastPassEndedAt ?? state.updatedAt) + this.#options.retireGraceMs / 2;
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
      this.#logger.warn("DEK sweep verify pass found older ciphertext; verifying again", {
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
      const tenant = await this.#tenants.get(tenantId);
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
      if (await this.#tenants.replace(next, tenant.revision ?? 0)) {
        for (const key of old) this.#dataKeys.forget(tenantId, key.version);
        this.#logger.info("DEK versions retired", { tenantId, versions: old.map((key) => key.version) });
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
      current = await this.#secrets.getSealed(tenantId, current.sk);
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
      const value = await this.#sealer.open(tenantId, item.name, item.current);
      change.envelope = {
        from: item.current.envelope,
        to: sealing.seal(item.name, item.current.version, value),
      };
    }
    if (item.pending !== undefined && stale(pendingDek)) {
      const value = await this.#sealer.open(tenantId, item.name, item.pending);
      change.pendingEnvelope = {
        from: item.pending.envelope,
        to: sealing.seal(item.name, item.pending.version, value),
      };
    }
    // A slow re-seal must not commit under a DEK snapshot that may have been superseded meanwhile.
    if (!sealing.fresh()) return "stale";
    if (!(await this.#secrets.reseal(tenantId, item.sk, change))) return "lost";
    const versions = [
      change.envelope === undefined ? currentDek : sealing.dekVersion,
      ...(pendingDek === undefined
        ? []
        : [change.pendingEnvelope === undefined ? pendingDek : sealing.dekVersion]),
    ];
    return { resealed: true, versions };
  }
}

const dekVersionsOf = (item: SealedItem): number[] => [
  envelopeDekVersion(item.current.envelope),
  ...(item.pending === undefined ? [] : [envelopeDekVersion(item.pending.envelope)]),
];

export function newSweep(tenantId: string, targetDekVersion: number, at: string): SweepState {
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
