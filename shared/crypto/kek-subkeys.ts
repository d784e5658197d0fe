import { hkdfSync } from "node:crypto";

/**
 * A local KEK serves four purposes, and none of them uses it directly: each uses its own subkey,
 * HKDF-SHA256 over the KEK with this salt and the purpose's label as `info`. A DEK wrapping key, a
 * fingerprint, an audit chain key and an item key so never share key material, and learning one (a
 * fingerprint is public) tells nothing of another or of the KEK.
 */
export const KEK_SUBKEY_SALT = "strongbox/local-kek/v2";

export const KEK_SUBKEY_LABELS = {
  /** The AES-256-GCM key that wraps DEKs. */
  wrap: "strongbox/local-kek/dek-wrap",
  /** Its first 8 bytes, in hex, name the KEK (`kek-…`) beside every DEK it wrapped. */
  fingerprint: "strongbox/local-kek/fingerprint",
  /** What the audit chain's day keys are derived from (chain-keys.ts). */
  auditChain: "strongbox/local-kek/audit-chain",
  /** What the item integrity key is derived from (item-integrity.ts). */
  itemIntegrity: "strongbox/local-kek/item-integrity",
} as const;

export type KekPurpose = keyof typeof KEK_SUBKEY_LABELS;

const SUBKEY_BYTES = 32;

export function kekSubkey(kek: Uint8Array, purpose: KekPurpose): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", kek, KEK_SUBKEY_SALT, KEK_SUBKEY_LABELS[purpose], SUBKEY_BYTES));
}
