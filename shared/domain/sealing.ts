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
