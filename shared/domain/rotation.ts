import type { RetiredDataKey } from "./types.ts";
import type { Deadline } from "./work.ts";

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

/**
 * The KEK re-wrap makes passes over every tenant. A pass in which every DEK could be re-wrapped ends it
 * (`done`); a pass in which any failed leaves it unfinished, and the next pass starts over from the
 * first tenant (those already on the target KEK cost no KMS call).
 */
export interface RewrapState {
  readonly targetKekId: string;
  readonly phase: "rewrap" | "done";
  /** The pass under way (or, once done, the last one), from 1. */
  readonly pass: number;
  /** The last tenant id the current pass has finished. */
  readonly cursor?: string;
  readonly startedAt: string;
  readonly updatedAt: string;
  readonly finishedAt?: string;
  /** Tenants visited and DEKs re-wrapped over all passes. */
  readonly tenantsScanned: number;
  readonly rewrapped: number;
  /** DEKs per KEK id after the current pass's re-wraps, for the tenants it has visited so far. */
  readonly dataKeysByKek: Record<string, number>;
  /**
   * DEKs the current pass could not re-wrap (their KEK is not configured, or KMS refused), by KEK id.
   * Never non-empty in a `done` re-wrap.
   */
  readonly failedByKek: Record<string, number>;
  /** The last pass that ended with failures: its number, its failures by KEK id, and when it ended. */
  readonly lastFailedPass?: {
    readonly pass: number;
    readonly failedByKek: Record<string, number>;
    readonly endedAt: string;
  };
  /** When a DEK last failed to re-wrap. */
  readonly lastFailureAt?: string;
  readonly deregistered?: string[];
  /** Authority items and audit chains moved onto the active KEK's keys, once every DEK is re-wrapped. */
  readonly rekey?: RekeyState;
}

/** The authority items the re-key visits, in order; `tenants` is each tenant's seal and deletion certificate. */
export const REKEY_KINDS = ["tokens", "bindings", "tenants", "break-glass", "wraps"] as const;
export type RekeyKind = (typeof REKEY_KINDS)[number];

/**
 * The re-key's progress: where it is (`step`, and in the items the kind and page), what it re-keyed,
 * and what it left alone because it verified under no configured key (`itemIntegrityFailures`) or was
 * not intact under the keys configured (`chainsBroken`): those are never made valid.
 */
export interface RekeyState {
  readonly step: "items" | "chains";
  readonly kind?: RekeyKind;
  readonly cursor?: string;
  /** In the chains step: the scope being walked and where its walk stopped, when it did. */
  readonly scope?: string;
  readonly scopeCursor?: string;
  /** Whether the scope's walk so far met a record keyed by a keeper other than the active one. */
  readonly scopeStale?: boolean;
  readonly itemsRekeyed: number;
  readonly itemIntegrityFailures: number;
  readonly chainsReanchored: number;
  readonly chainsBroken: string[];
}

/** One page of authority items of one kind re-keyed; `cursor` is where the next page starts. */
export interface RekeyPage {
  readonly rekeyed: number;
  readonly integrityFailures: number;
  /** Live wraps whose payload key this process may not move: the page is visited again later. */
  readonly waiting?: number;
  readonly cursor?: string;
}

/** Moves authority items' MACs (and wrapped payloads' data keys) onto the active KEK's keys. */
export interface AuthorityRekey {
  page(kind: RekeyKind, targetKekId: string, cursor: string | undefined, limit: number): Promise<RekeyPage>;
}

/** Where one scope's re-anchoring stands after a call. */
export type ReanchorOutcome =
  | { readonly status: "current" | "reanchored" | "broken" }
  /**
   * Out of time (`cursor` is where the walk goes on), or records keep landing under an old keeper;
   * `waiting` when records under a keeper that is going away still wait for the sequencer, which the
   * re-wrap must not outlast (they could never be chained once that keeper is gone).
   */
  | {
      readonly status: "unfinished";
      readonly cursor?: string;
      readonly stale: boolean;
      readonly waiting?: boolean;
    };

/**
 * Makes an audit chain verifiable without the previous keepers' keys: verifies it under every key
 * configured and, if any record needed a key other than the active one, appends a record under the
 * active key that attests the chain as verified (docs/audit-chain.md#re-anchoring).
 */
export interface ChainReanchoring {
  /** Whether any keeper other than the active one is configured: without one there is nothing to re-anchor. */
  needed(): boolean;
  reanchor(
    scope: string,
    options: { readonly budgetMs: number; readonly cursor?: string; readonly stale?: boolean },
  ): Promise<ReanchorOutcome>;
}

/** The answer to a re-wrap request: whether it started a new re-wrap or continues one, and its state. */
export interface RewrapRequest {
  readonly started: boolean;
  readonly state: RewrapState;
}

export interface RewrapRun {
  readonly state: RewrapState;
  readonly rewrapped: number;
  /** `failed`: a pass ended with DEKs that could not be re-wrapped; the next run starts another. */
  /** `waiting`: on what no run can hurry, records for the sequencer or live wraps to be used or expire. */
  readonly stoppedBecause: "done" | "deadline" | "busy" | "failed" | "waiting";
}

/**
 * Where a requested KEK re-wrap goes to be worked on: on Lambda an EventBridge event the rotation
 * function receives (only its role may ReEncrypt), locally an in-process worker. The work itself
 * is resumable from its checkpoint, so a request delivered twice or not at all loses nothing: the
 * scheduled runner continues any unfinished re-wrap.
 */
export interface RewrapDispatch {
  request(requestId: string): Promise<void>;
}

/** What the rotation function receives for a re-wrap request: the detail of a "KEK Rewrap Requested" event. */
export const REWRAP_REQUEST = {
  source: "strongbox.api",
  detailType: "KEK Rewrap Requested",
} as const;

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

/** What rotation tells the outside world; identifiers and counts only, never a value or key. */
export interface RotationEvent {
  readonly detailType:
    | "Secret Rotation Due"
    | "Secret Rotated"
    | "Rotation Failed"
    | "DEK Sweep Finished"
    | "KEK Rewrap Finished";
  readonly detail: Readonly<Record<string, string | number>>;
}

export type RotateResult =
  | {
      readonly name: string;
      readonly status: "rotated";
      readonly version: number;
      readonly previousVersion: number;
    }
  | { readonly name: string; readonly status: "awaiting_value"; readonly rotationDueAt: string };

/** What a run did for the KEK re-wrap; `handed-off` when the API gave it to the rotation function. */
export interface RewrapSummary {
  readonly phase: string;
  readonly pass?: number;
  readonly rewrapped: number;
  readonly stoppedBecause: RewrapRun["stoppedBecause"] | "handed-off";
  /** DEKs that failed in the pass that just ended, when it failed. */
  readonly failedByKek?: Record<string, number>;
}

export interface RunSummary {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly sweeps: readonly {
    tenantId: string;
    phase: string;
    resealed: number;
    stoppedBecause: SweepRun["stoppedBecause"] | "failed";
  }[];
  readonly rewrap?: RewrapSummary;
  /** DEKs the run rotated for their age or their seal count. */
  readonly deks?: { checked: number; rotated: number; failed: number; scanComplete: boolean };
  /** `code` names why the round over due secrets stopped, when it failed as a whole. */
  readonly due: {
    found: number;
    rotated: number;
    notified: number;
    failed: number;
    scanComplete: boolean;
    code?: string;
  };
  readonly events: number;
  /** True when the deadline cut the run short; the next run continues from the checkpoints. */
  readonly outOfTime: boolean;
}

/** The DEK sweeps the scheduled work drives. */
export interface SweepWork {
  /** Tenants whose sweep has not finished. */
  pendingSweeps(): Promise<string[]>;
  runSweep(tenantId: string, owner: string, deadline: Deadline, requestId: string): Promise<SweepRun>;
}

/** What the round over tenants for worn DEKs did: checked, rotated (and why), and what failed. */
export interface DekAgeSummary {
  readonly checked: number;
  readonly rotated: readonly { tenantId: string; dekVersion: number; reason: "age" | "seals" }[];
  readonly failures: readonly { tenantId?: string; code: string }[];
  /** True when the round reached the last tenant; otherwise the next run continues from its checkpoint. */
  readonly scanComplete: boolean;
}

/** The scheduled DEK rotations: a tenant's DEK past its rotation period or its seal threshold. */
export interface DekAgeWork {
  rotateWornDeks(deadline: Deadline, runId: string): Promise<DekAgeSummary>;
}

/** The KEK re-wrap the scheduled work continues once it has been started. */
export interface RewrapWork {
  rewrapState(): Promise<RewrapState | undefined>;
  runRewrap(owner: string, deadline: Deadline): Promise<RewrapRun>;
}

/** Rotation of one due secret, recorded as the system's own change. */
export interface ScheduledRotation {
  rotateScheduled(
    tenantId: string,
    name: string,
    token: string,
    requestId: string,
    events: RotationEvent[],
  ): Promise<RotateResult>;
}
