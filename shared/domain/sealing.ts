import type { SealedVersion, WrappedDataKey } from "./types.ts";

/** Seals under one snapshot of the tenant's current DEK. */
export interface SealingKey {
  readonly dekVersion: number;
  seal(name: string, version: number, value: string): Uint8Array;
  /**
   * Whether the snapshot is recent enough to commit ciphertext sealed under it. A DEK version is
   * retired only a grace period after the next one was created, and a writer holding an older snapshot
   * takes a fresh one instead, so no commit can land under a DEK that has been retired meanwhile.
   */
  fresh(): boolean;
}

/** Seals and opens secret values, binding each to its tenant, name and version. */
export interface SecretSealer {
  sealingKey(tenantId: string): Promise<SealingKey>;
  open(tenantId: string, name: string, sealed: SealedVersion): Promise<string>;
}

/** Makes a new tenant's first DEK; only the wrapped form comes back, for storing. */
export interface DataKeyIssuer {
  generateFirst(tenantId: string): Promise<WrappedDataKey>;
}

/** Drops a tenant's unwrapped DEKs from this process's memory, once their wrapped form is destroyed. */
export interface DataKeyForgetter {
  forget(tenantId: string, version: number): void;
}
/**
 * AES-GCM with random 96-bit IVs stays within NIST SP 800-38D's bound only below 2^32 encryptions
 * under one key. By default the scheduled runner rotates a DEK at a quarter of that, and sealing is
 * refused at half of it, should rotation not have caught up.
 */
export const DEK_SEAL_BOUND = 2 ** 32;
export const DEFAULT_DEK_SEAL_ROTATE_THRESHOLD = 2 ** 30;
export const DEFAULT_DEK_SEAL_LIMIT = 2 ** 31;
