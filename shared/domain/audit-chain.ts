import * as z from "zod";
import type { AuditEvent } from "./types.ts";

/**
 * One link of a scope's audit chain: the event, its place (`sequence`, from 1), the hash of the record
 * before it, its own hash, and a MAC over that hash under a key the database does not hold.
 *
 * The hash covers `tenantId`, but that alone does not keep chains apart: a chain copied whole into
 * another scope's partition carries consistent hashes. What does is that verification requires every
 * record's `tenantId` to be the scope, record 1 links to a genesis hash derived from the scope
 * (`chainGenesis`), and the MAC covers the scope.
 */
export interface ChainedAuditRecord extends AuditEvent {
  /** The id the request path gave the record; a sequencer chains each id once. */
  readonly id?: string;
  readonly sequence: number;
  readonly prevHash: string;
  readonly hash: string;
  readonly mac: string;
  /** Names the key the MAC was made with (keeper and day); never the key itself. */
  readonly macKeyRef: string;
}

/**
 * A record as the request path writes it, before a sequencer chains it: the event, a unique id, and a
 * MAC over the scope and the record's hash (marked as pending, so it is never a chain MAC) under the
 * day key. A table writer can delete one, which the stream (or the local witness) still shows, but
 * cannot forge one the sequencer would take.
 */
export interface PendingAuditRecord extends AuditEvent {
  readonly id: string;
  readonly macKeyRef: string;
  readonly mac: string;
}

const pendingShape = z.looseObject({
  tenantId: z.string(),
  action: z.string(),
  outcome: z.string(),
  actor: z.string(),
  role: z.string(),
  requestId: z.string(),
  time: z.string(),
  id: z.string().regex(/^[0-9a-f-]{36}$/),
  macKeyRef: z.string(),
  mac: z.string(),
});

export function isPendingRecordShape(value: unknown): value is PendingAuditRecord {
  return pendingShape.safeParse(value).success;
}

/** A chain head as written outside the table, where service roles may append but not rewrite. */
export interface ChainAnchor extends ChainHead {
  readonly scope: string;
  readonly time: string;
}

/**
 * What a log answers for a scope's newest anchor when the stored anchor does not say what its place in
 * the log does (another scope or sequence, no hash, no anchor at all), or when the log shows it hidden
 * or replaced: written, or hidden, by someone other than the sequencer. It is no head to check against,
 * and verify reports it (`anchor_mismatch`).
 */
export interface MismatchedAnchor {
  readonly scope: string;
  /** The highest sequence the suspicious anchors' places name. */
  readonly sequence: number;
  readonly mismatch: true;
  /**
   * What the newest anchor said when first written, where its later versions or delete markers hide or
   * replace it: a head the chain must still reach and match, though the mismatch is reported regardless.
   */
  readonly original?: ChainHead;
}

/** Append-only storage of chain anchors (S3 with Object Lock in AWS, a file under `.data/` locally). */
export interface AnchorLog {
  append(anchor: ChainAnchor): Promise<void>;
  /** The anchor with the highest sequence this scope has, or undefined when it has none. */
  latest(scope: string): Promise<ChainAnchor | MismatchedAnchor | undefined>;
  /** Every scope with an anchor: a chain deleted whole still has its anchors. */
  scopes(): Promise<string[]>;
}

/** What an audit listing or export is narrowed to; every field is optional and they combine with AND. */
export interface AuditFilter {
  readonly secretName?: string;
  readonly actor?: string;
  readonly action?: string;
  readonly outcome?: string;
  /** Inclusive bounds on the record's time, ISO 8601 UTC. */
  readonly from?: string;
  readonly to?: string;
}

/**
 * What a stored record must at least look like before verification reads it: the table is not
 * trusted, and a block may hold anything (`null`, a number, a record missing its chain fields).
 */
const storedRecordShape = z.looseObject({
  tenantId: z.string(),
  action: z.string(),
  outcome: z.string(),
  actor: z.string(),
  role: z.string(),
  requestId: z.string(),
  time: z.string(),
  sequence: z.number(),
  prevHash: z.string(),
  hash: z.string(),
  mac: z.string(),
  macKeyRef: z.string(),
});

export function isChainedRecordShape(value: unknown): value is ChainedAuditRecord {
  return storedRecordShape.safeParse(value).success;
}

/** Free-text fields are capped, in characters, so that no one record can crowd a block out. */
export const AUDIT_FIELD_LIMITS = { detail: 2048, reason: 1024, actor: 512 } as const;

/** The event with each long free-text field cut to its limit, saying how much was cut. */
export function capAuditFields<E extends AuditEvent>(event: E): E {
  let capped = event;
  for (const [field, limit] of Object.entries(AUDIT_FIELD_LIMITS) as [
    keyof typeof AUDIT_FIELD_LIMITS,
    number,
  ][]) {
    const value = event[field];
    if (typeof value === "string" && value.length > limit) {
      // The marker is at most 30 characters, so the capped value stays within the limit.
      const kept = limit - 30;
      capped = { ...capped, [field]: `${value.slice(0, kept)} [${value.length - kept} characters cut]` };
    }
  }
  return capped;
}

export interface ChainHead {
  readonly sequence: number;
  readonly hash: string;
}

/** Where the chains stand, for health reports: as stored, and as this instance last appended them. */
export interface ChainHeads {
  /** The newest record's place and hash as stored, whichever instance wrote it. */
  storedHead(scope: string): Promise<ChainHead | undefined>;
  /** The head this instance last appended to a scope, if it did: an anchor kept outside the table. */
  knownHead(scope: string): ChainHead | undefined;
  /** How many chains this instance has appended to since it started; from memory. */
  knownChainCount(): number;
}

/**
 * The bytes a record's hash covers: every field but the hash and the MAC, as sorted key/value pairs,
 * so that neither field order nor an added empty field changes what is hashed.
 */
export function canonicalRecord(record: object): string {
  const pairs = Object.entries(record)
    .filter(([, value]) => value !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify(pairs);
}

/**
 * A re-anchor record (action `audit.reanchor`, role `system`) says in its `detail` that the service
 * verified the chain up to that head under every key it then held. Under the active key it stands
 * for the records before it whose keys have gone since (docs/audit-chain.md#re-anchoring).
 */
export function reanchorDetail(head: ChainHead): string {
  return `verified through ${head.sequence} ${head.hash}`;
}

export function reanchoredHead(record: {
  action?: unknown;
  role?: unknown;
  detail?: unknown;
}): ChainHead | undefined {
  if (record.action !== "audit.reanchor" || record.role !== "system" || typeof record.detail !== "string") {
    return undefined;
  }
  const found = /^verified through ([1-9]\d*) ([0-9a-f]{64})$/.exec(record.detail);
  return found === null ? undefined : { sequence: Number(found[1]), hash: String(found[2]) };
}

export type ChainBreakReason =
  | "missing"
  | "malformed"
  | "foreign_scope"
  | "misplaced"
  | "hash_mismatch"
  | "mac_mismatch"
  | "unknown_mac_key"
  | "future_dated"
  | "key_day_mismatch"
  | "day_regressed"
  | "link_mismatch"
  | "truncated"
  | "anchor_mismatch"
  | "duplicate"
  | "unsequenced";

export const CHAIN_BREAK_EXPLANATIONS: Record<ChainBreakReason, string> = {
  missing: "the record is missing: deleted, or its neighbours reordered",
  malformed:
    "the record stored here is not an audit record at all (null, or fields missing or of the wrong type): it was overwritten",
  foreign_scope:
    "the record belongs to another scope's chain: records were copied in from another tenant's partition",
  misplaced: "the record stored here claims another sequence number: records were moved or swapped",
  hash_mismatch: "the record's content does not match its hash: it was edited",
  mac_mismatch:
    "the record's MAC does not verify: it was edited and its hash recomputed without the audit key",
  unknown_mac_key:
    "the record names an audit key this service does not hold, and no re-anchor under a key it holds attests it: it was forged or re-keyed",
  future_dated:
    "the record is dated after today, or names a key of a day that has not come: it was forged with a key derived ahead of time",
  key_day_mismatch:
    "the record's MAC key belongs to another day than the record's time: it was re-keyed with another day's key",
  day_regressed:
    "the record is dated on an earlier day than the record before it: records were rewritten with an older day's key",
  link_mismatch: "the record does not link to the one before it: records were removed, inserted or reordered",
  truncated:
    "the chain ends before, or differs at, a head anchored outside the table, appended by this instance or expected by the verifier: its tail (or the whole chain) was deleted or rewritten",
  anchor_mismatch:
    "the latest anchor outside the table was hidden or replaced, or does not say what its place in the anchor log does: someone other than the sequencer wrote or hid it, so the chain's tail cannot be proven whole",
  duplicate: "the record's id is already in the chain: a record was copied or replayed into it",
  unsequenced:
    "records of this scope have waited longer than the sequencing bound without being chained: the sequencer is stopped, or records were forged into the queue",
};

export interface ChainVerification {
  readonly scope: string;
  readonly intact: boolean;
  /** The last sequence number up to which every record verified (0: none). */
  readonly verifiedThrough: number;
  readonly records: number;
  readonly head?: ChainHead;
  readonly break?: { readonly sequence: number; readonly reason: ChainBreakReason; readonly message: string };
  /** The latest anchor checked against, when the scope has one. */
  readonly anchor?: ChainHead;
  /** Present when this call stopped at its time budget: ask again with it to go on from there. */
  readonly nextCursor?: string;
}

/** The one-line answer the verify command prints and the route returns as `summary`. */
export function describeVerification(result: ChainVerification): string {
  if (result.break === undefined) {
    if (result.nextCursor !== undefined) {
      return `${result.scope}: intact up to sequence ${result.verifiedThrough} so far; continue with the cursor`;
    }
    return `${result.scope}: intact up to sequence ${result.verifiedThrough}`;
  }
  return `${result.scope}: broken at sequence ${result.break.sequence}: ${result.break.message}`;
}
