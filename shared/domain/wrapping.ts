/**
 * Response wrapping (seed 002 §3.1, Vault's semantics): a response that would carry a value or a new
 * token carries a single-use wrapping token instead, and `POST /v1/unwrap` hands the payload out
 * exactly once. The item bears authority (it yields a payload), so its metadata is MAC'd like a token
 * item, and its payload is sealed under a data key of its own, bound to the wrapping id.
 */
export interface WrapRecord {
  readonly wrapId: string;
  readonly secretHash: Uint8Array;
  /** The tenant whose value is wrapped, or `_system` for a new token. */
  readonly scope: string;
  /** The operation whose response was wrapped. */
  readonly kind: "secret.read" | "token.create";
  /** The token id that asked for the wrapped response. */
  readonly creator: string;
  readonly createdAt: string;
  readonly expiresAt: string;
}

/** A payload sealed at rest: its envelope and the data key it was sealed under, wrapped by the KEK. */
export interface SealedPayload {
  readonly envelope: Uint8Array;
  readonly kekId: string;
  readonly wrappedKey: Uint8Array;
}

/** Seals and opens wrapped payloads; implemented over the keyring and the envelope. */
export interface PayloadSealer {
  seal(scope: string, wrapId: string, payload: string): Promise<SealedPayload>;
  open(scope: string, wrapId: string, sealed: SealedPayload): Promise<string>;
}

/** What a wrapped response and a lookup show; the token only in the wrapped response, once. */
export interface WrapInfo {
  readonly token?: string;
  readonly id: string;
  readonly kind: WrapRecord["kind"];
  readonly creator: string;
  readonly createdAt: string;
  readonly expiresAt: string;
}

/** Wraps a response's payload for a caller; the use case whose response it is records the wrap id. */
export interface ResponseWrapper {
  wrap(
    scope: string,
    kind: WrapRecord["kind"],
    creator: string,
    payload: string,
    ttlSeconds: number,
  ): Promise<WrapInfo & { readonly token: string }>;
}

export const WRAP_SEAL_VERSION = "strongbox/wrap/v1";

/** The bytes a wrap item's MAC covers. */
export function canonicalWrap(record: WrapRecord): string {
  return JSON.stringify([
    WRAP_SEAL_VERSION,
    record.wrapId,
    Buffer.from(record.secretHash).toString("hex"),
    record.scope,
    record.kind,
    record.creator,
    record.createdAt,
    record.expiresAt,
  ]);
}

/** The longest a wrapping token may live: a handoff, not storage. */
export const MAX_WRAP_TTL_SECONDS = 24 * 3600;
