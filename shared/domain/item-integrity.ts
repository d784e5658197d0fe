import type { BindingRecord, TokenRecord } from "./types.ts";

/**
 * Items whose contents grant access carry a MAC under a key the table never holds, so that a principal
 * who can write the table but not reach the key's keeper cannot mint or widen authority: a `TOKEN#`
 * item written by hand, or one whose role, tenants, expiry or revocation was edited, no longer verifies.
 */
export interface ItemSeal {
  /** HMAC-SHA256 over the item's canonical content, hex. */
  readonly mac: string;
  /** Names the keeper of the key the MAC was made with (`local:<KEK fingerprint>` or `kms:<key ARN>`); never the key. */
  readonly macKeyRef: string;
}

/** Seals and checks authority-bearing items' canonical content; implemented in crypto, over the audit keeper. */
export interface ItemIntegrity {
  /** The MAC of `content` under the current key, and the reference to store beside it. */
  seal(content: string): Promise<ItemSeal>;
  /** False when the MAC does not verify, or the reference names a key this service does not hold. */
  verify(content: string, seal: ItemSeal): Promise<boolean>;
}

/** Part of what a token's MAC covers, so a MAC made for another kind of item or encoding never verifies here. */
export const TOKEN_SEAL_VERSION = "strongbox/token/v1";

/**
 * The bytes a token's MAC covers: every field of the item, each in a fixed place, behind the version
 * tag. A revocation is `null` until it happens, so removing `revokedAt` changes the content.
 */
export function canonicalToken(record: TokenRecord): string {
  return JSON.stringify([
    TOKEN_SEAL_VERSION,
    record.tokenId,
    Buffer.from(record.secretHash).toString("hex"),
    record.role,
    [...record.tenants],
    record.createdAt,
    record.expiresAt,
    record.revokedAt ?? null,
  ]);
}

/** As TOKEN_SEAL_VERSION, for bindings: a token's MAC never verifies as a binding's, nor the reverse. */
export const BINDING_SEAL_VERSION = "strongbox/binding/v1";

/**
 * The bytes a binding's MAC covers: every field, each in a fixed place. A delete is `null` until it
 * happens, so removing `deletedAt` (undoing a delete) changes the content.
 */
export function canonicalBinding(record: BindingRecord): string {
  return JSON.stringify([
    BINDING_SEAL_VERSION,
    record.bindingId,
    record.principalArn,
    record.role,
    [...record.tenants],
    record.createdAt,
    record.deletedAt ?? null,
  ]);
}
