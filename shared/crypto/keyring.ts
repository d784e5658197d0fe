/**
 * The keyring / material split of the AWS Encryption SDK: a keyring owns KEKs and only ever hands out
 * data keys, in plaintext for immediate use and wrapped for storage. KEKs never leave it.
 */

/** Non-secret facts bound to every wrap and unwrap; a DEK wrapped for one tenant will not unwrap for another. */
export interface DataKeyContext {
  readonly tenantId: string;
  readonly dekVersion: number;
}

export interface WrappedKey {
  /** Which KEK wrapped the key: a local KEK fingerprint or a KMS key ARN. */
  readonly kekId: string;
  readonly ciphertext: Uint8Array;
}

export interface GeneratedDataKey {
  readonly plaintext: Uint8Array;
  readonly wrapped: WrappedKey;
}

export interface Keyring {
  readonly kind: "local" | "kms";
  /** The KEK new data keys are wrapped with. */
  readonly activeKekId: string;
  /** Every KEK this keyring can unwrap with, the active one first. */
  readonly kekIds: readonly string[];
  generateDataKey(context: DataKeyContext): Promise<GeneratedDataKey>;
  unwrap(wrapped: WrappedKey, context: DataKeyContext): Promise<Uint8Array>;
  /** Re-wraps under the active KEK; on KMS this never exposes the plaintext key outside KMS. */
  rewrap(wrapped: WrappedKey, context: DataKeyContext): Promise<WrappedKey>;
  /**
   * Proves the keeper is reachable and names every configured KEK as stored DEKs name them (KMS
   * aliases resolve to key ARNs). Throws KeyringUnavailableError when the keeper cannot answer.
   */
  probe(): Promise<readonly string[]>;
}

/** KMS encryption contexts are string maps; the tenant key is the one the key policy conditions on. */
export function encryptionContext(context: DataKeyContext): Record<string, string> {
  return {
    "strongbox:tenant": context.tenantId,
    "strongbox:dek-version": String(context.dekVersion),
  };
}
