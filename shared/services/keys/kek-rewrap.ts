import type { Keyring } from "../../crypto/keyring.ts";
import { ConflictError, NotFoundError, StrongboxError } from "../../domain/errors.ts";
import {
  type AuthorityRekey,
  type ChainReanchoring,
  REKEY_KINDS,
  type RekeyState,
  type RewrapRun,
  type RewrapState,
  type RewrapWork,
} from "../../domain/rotation.ts";
import { now } from "../../domain/time.ts";
import type { WrappedDataKey } from "../../domain/types.ts";
import { SYSTEM_SCOPE } from "../../domain/types.ts";
import type { Deadline } from "../../domain/work.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { CheckpointedWork, CheckpointRepository } from "../../storage/checkpoint-repository.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";
import { dataKeysByKek, tally } from "./census.ts";
import { MAX_TENANT_WRITE_ATTEMPTS } from "./data-keys.ts";

/** Where the re-wrap keeps its checkpoint: there is one at a time, for the whole table. */
export const REWRAP: CheckpointedWork = "kek-rewrap";

/** The active KEK as stored DEKs name it (a KMS alias resolves to its key ARN). */
export async function activeKekId(keyring: Keyring): Promise<string> {
  const [active] = await keyring.probe();
  return active ?? keyring.activeKekId;
}

/** The re-wrap's checkpointed state; checkpoints written before passes were counted are on pass 1. */
export async function readRewrapState(checkpoints: CheckpointRepository): Promise<RewrapState | undefined> {
  const stored = await checkpoints.get<RewrapState>(REWRAP);
  return stored === undefined ? undefined : { ...stored, pass: stored.pass ?? 1 };
}

export function newRewrap(targetKekId: string): RewrapState {
  const at = now();
  return {
    targetKekId,
    phase: "rewrap",
    pass: 1,
    startedAt: at,
    updatedAt: at,
    tenantsScanned: 0,
    rewrapped: 0,
    dataKeysByKek: {},
    failedByKek: {},
  };
}

const anyFailed = (failedByKek: Record<string, number>) => Object.values(failedByKek).some((n) => n > 0);

/** How long one call may walk one chain before it checkpoints where it stopped. */
const REANCHOR_BUDGET_MS = 5_000;
/** Broken chains named in the state; past this many only the count in the logs tells the rest. */
const MAX_NAMED_BROKEN = 100;

const FIRST_REKEY: RekeyState = {
  step: "items",
  kind: REKEY_KINDS[0],
  itemsRekeyed: 0,
  itemIntegrityFailures: 0,
  chainsReanchored: 0,
  chainsBroken: [],
};

/** A re-wrap whose every step is done, re-keying included: only then may the old KEK go. */
export function rekeyedUnder(state: RewrapState | undefined, kekId: string): boolean {
  return state?.phase === "done" && state.targetKekId === kekId && state.rekey !== undefined;
}

/**
 * The KEK re-wrap: every tenant's DEKs wrapped again under the active KEK (KMS ReEncrypt, so no DEK
 * leaves the keeper in plaintext), then the authority items and audit chains re-keyed (the `rekey`
 * step), resumable from its checkpoint, and the old KEK deregistered once nothing depends on it. Started by a request (rewrap-request.ts); this is the work itself, which on
 * AWS only the rotation function runs, since only its role may ReEncrypt.
 */
export class KekRewrap implements RewrapWork {
  readonly #keyring: Keyring;
  readonly #tenants: TenantRepository;
  readonly #checkpoints: CheckpointRepository;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;
  readonly #options: { readonly leaseMs: number; readonly pageSize: number };
  readonly #items: AuthorityRekey;
  readonly #chains: ChainReanchoring;

  constructor(
    keyring: Keyring,
    tenants: TenantRepository,
    checkpoints: CheckpointRepository,
    metrics: MetricsRecorder,
    logger: Logger,
    options: { readonly leaseMs: number; readonly pageSize: number },
    rekey: { readonly items: AuthorityRekey; readonly chains: ChainReanchoring },
  ) {
    this.#items = rekey.items;
    this.#chains = rekey.chains;
    this.#keyring = keyring;
    this.#tenants = tenants;
    this.#checkpoints = checkpoints;
    this.#metrics = metrics;
    this.#logger = logger;
    this.#options = options;
  }

  /**
   * Advances a started re-wrap until it is done, the deadline passes, or a pass ends with DEKs that
   * failed. Such a pass leaves the re-wrap unfinished and stops the run: the next run (the scheduled
   * one, or the next request) makes a new pass, rather than this one retrying a failing KMS at once.
   */
  async runRewrap(owner: string, deadline: Deadline): Promise<RewrapRun> {
    let state = await readRewrapState(this.#checkpoints);
    if (state === undefined) throw new NotFoundError("no KEK re-wrap has been started");
    if (state.phase === "done") return { state, rewrapped: 0, stoppedBecause: "done" };
    if (!(await this.#checkpoints.acquire(REWRAP, owner, Date.now(), this.#options.leaseMs))) {
      return { state, rewrapped: 0, stoppedBecause: "busy" };
    }
    let rewrappedThisRun = 0;
    try {
      // Registered before any DEK is wrapped by it, like a new tenant's KEK.
      await this.#tenants.registerKek(state.targetKekId);
      await this.#tenants.requireDirectory();
      for (;;) {
        if (deadline.expired()) return { state, rewrapped: rewrappedThisRun, stoppedBecause: "deadline" };
        if (state.rekey !== undefined) {
          const step = await this.#rekeyStep(state);
          state = step.finished ? await this.#finishRewrap(step.state) : step.state;
          if (
            !(await this.#checkpoints.checkpoint(REWRAP, owner, state, Date.now() + this.#options.leaseMs))
          ) {
            return { state, rewrapped: rewrappedThisRun, stoppedBecause: "busy" };
          }
          if (step.finished) return { state, rewrapped: rewrappedThisRun, stoppedBecause: "done" };
          // Nothing this run can do about records waiting for the sequencer, or live wraps whose payload
          // key it may not move: a later run looks again.
          if (step.waiting === true) return { state, rewrapped: rewrappedThisRun, stoppedBecause: "waiting" };
          continue;
        }
        const page = await this.#tenants.scan(state.cursor, this.#options.pageSize);
        const byKek: Record<string, number> = { ...state.dataKeysByKek };
        const failed: Record<string, number> = { ...state.failedByKek };
        let rewrapped = 0;
        let lastFailureAt: string | undefined = state.lastFailureAt;
        for (const tenant of page.tenants) {
          const outcome = await this.#rewrapTenant(tenant.tenantId, state.targetKekId);
          rewrapped += outcome.rewrapped;
          for (const kekId of outcome.kekIds) tally(byKek, kekId);
          for (const kekId of outcome.failed) {
            tally(failed, kekId);
            this.#metrics.increment("RotationFailures");
            lastFailureAt = now();
          }
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
          ...(lastFailureAt === undefined ? {} : { lastFailureAt }),
          ...(page.last === undefined ? {} : { cursor: page.last }),
        };
        let stoppedBecause: RewrapRun["stoppedBecause"] | undefined;
        if (page.last === undefined) {
          if (anyFailed(failed)) {
            state = nextPass(state);
            stoppedBecause = "failed";
          } else {
            // Every DEK is on the target KEK: the authority items and chains are next.
            state = { ...state, rekey: FIRST_REKEY };
          }
        }
        if (!(await this.#checkpoints.checkpoint(REWRAP, owner, state, Date.now() + this.#options.leaseMs))) {
          return { state, rewrapped: rewrappedThisRun, stoppedBecause: "busy" };
        }
        if (stoppedBecause !== undefined) return { state, rewrapped: rewrappedThisRun, stoppedBecause };
      }
    } finally {
      await this.#checkpoints.release(REWRAP, owner).catch(() => undefined);
    }
  }

  /**
   * One page of authority items, or one chain's walk (or as much of it as the budget allows), then
   * the state to checkpoint. Items go first: a chain re-anchored before a token was re-keyed would
   * not attest the records that re-key makes, but those are under the active key anyway.
   */
  async #rekeyStep(
    state: RewrapState,
  ): Promise<{ state: RewrapState; finished: boolean; waiting?: boolean }> {
    const rekey = state.rekey ?? FIRST_REKEY;
    const at = now();
    if (rekey.step === "items") {
      const kind = rekey.kind ?? REKEY_KINDS[0];
      const page = await this.#items.page(kind, state.targetKekId, rekey.cursor, this.#options.pageSize);
      const { cursor: _cursor, kind: _kind, ...rest } = rekey;
      const counted = {
        ...rest,
        itemsRekeyed: rekey.itemsRekeyed + page.rekeyed,
        itemIntegrityFailures: rekey.itemIntegrityFailures + page.integrityFailures,
      };
      if ((page.waiting ?? 0) > 0) {
        // The same page again on a later run, by when its waiting wraps are used or expired.
        const again: RekeyState = {
          ...counted,
          kind,
          ...(rekey.cursor === undefined ? {} : { cursor: rekey.cursor }),
        };
        return { state: { ...state, rekey: again, updatedAt: at }, finished: false, waiting: true };
      }
      const nextKind = REKEY_KINDS[REKEY_KINDS.indexOf(kind) + 1];
      const next: RekeyState =
        page.cursor !== undefined
          ? { ...counted, kind, cursor: page.cursor }
          : nextKind !== undefined
            ? { ...counted, kind: nextKind }
            : { ...counted, step: "chains" };
      const finished = next.step === "chains" && !this.#chains.needed();
      return { state: { ...state, rekey: next, updatedAt: at }, finished };
    }
    const scope = rekey.scope ?? (await this.#nextScope(rekey.cursor));
    if (scope === undefined) return { state: { ...state, updatedAt: at }, finished: true };
    const outcome = await this.#chains.reanchor(scope, {
      budgetMs: REANCHOR_BUDGET_MS,
      ...(rekey.scopeCursor === undefined ? {} : { cursor: rekey.scopeCursor }),
      ...(rekey.scope === undefined ? {} : { stale: rekey.scopeStale === true }),
    });
    const { scope: _scope, scopeCursor: _scopeCursor, scopeStale: _scopeStale, ...rest } = rekey;
    const next: RekeyState =
      outcome.status === "unfinished"
        ? {
            ...rest,
            scope,
            scopeStale: outcome.stale,
            ...(outcome.cursor === undefined ? {} : { scopeCursor: outcome.cursor }),
          }
        : {
            ...rest,
            cursor: scope,
            chainsReanchored: rekey.chainsReanchored + (outcome.status === "reanchored" ? 1 : 0),
            chainsBroken:
              outcome.status === "broken" && rekey.chainsBroken.length < MAX_NAMED_BROKEN
                ? [...rekey.chainsBroken, scope]
                : rekey.chainsBroken,
          };
    return {
      state: { ...state, rekey: next, updatedAt: at },
      finished: false,
      ...(outcome.status === "unfinished" && outcome.waiting === true ? { waiting: true } : {}),
    };
  }

  /** Scopes in order: `_system`, then every tenant in the directory (a deleted tenant's chain is kept). */
  async #nextScope(after: string | undefined): Promise<string | undefined> {
    if (after === undefined) return SYSTEM_SCOPE;
    const page = await this.#tenants.listIds(after === SYSTEM_SCOPE ? undefined : after, 1);
    return page.tenantIds[0];
  }

  /**
   * A pass visited every tenant and re-wrapped every DEK, so no DEK should depend on another KEK any
   * more. A KEK leaves the registry (and start-up stops asking for it) only if a fresh count over the
   * whole directory, made now, also finds no DEK wrapped by it: a tenant the pass missed, or one
   * re-wrapped back by an older deployment meanwhile, keeps its KEK registered.
   */
  async #finishRewrap(state: RewrapState): Promise<RewrapState> {
    const registered = await this.#tenants.registeredKeks();
    const recount = await dataKeysByKek(this.#tenants);
    const deregistered = registered.filter(
      (kekId) =>
        kekId !== state.targetKekId && (state.dataKeysByKek[kekId] ?? 0) === 0 && (recount[kekId] ?? 0) === 0,
    );
    for (const kekId of deregistered) await this.#tenants.deregisterKek(kekId);
    return { ...state, dataKeysByKek: recount, phase: "done", finishedAt: now(), deregistered };
  }

  async #rewrapTenant(
    tenantId: string,
    active: string,
  ): Promise<{ rewrapped: number; kekIds: string[]; failed: string[] }> {
    for (let attempt = 0; attempt < MAX_TENANT_WRITE_ATTEMPTS; attempt += 1) {
      const tenant = await this.#tenants.get(tenantId);
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
          const wrapped = await this.#keyring.rewrap(
            { kekId: key.kekId, ciphertext: key.ciphertext },
            { tenantId, dekVersion: key.version },
          );
          dataKeys.push({ ...key, kekId: wrapped.kekId, ciphertext: wrapped.ciphertext });
          rewrapped += 1;
        } catch (error) {
          // Logged by code only: the message may name keys but the DEK itself never reaches here.
          this.#logger.error("DEK could not be re-wrapped", {
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
      if (await this.#tenants.replace({ ...tenant, dataKeys }, tenant.revision ?? 0)) {
        return { rewrapped, kekIds: dataKeys.map((key) => key.kekId), failed };
      }
    }
    throw new ConflictError(`tenant ${tenantId} kept changing during its re-wrap; the re-wrap resumes there`);
  }

  rewrapState(): Promise<RewrapState | undefined> {
    return readRewrapState(this.#checkpoints);
  }
}

/** After a pass with failures: the next pass starts over from the first tenant, its failures kept. */
function nextPass(state: RewrapState): RewrapState {
  const { cursor: _cursor, ...rest } = state;
  const endedAt = now();
  return {
    ...rest,
    pass: state.pass + 1,
    dataKeysByKek: {},
    failedByKek: {},
    lastFailedPass: { pass: state.pass, failedByKek: state.failedByKek, endedAt },
    updatedAt: endedAt,
  };
}
