/** The scope of the global seal, which covers every tenant; no tenant id can be `*`. */
export const GLOBAL_SEAL_SCOPE = "*";

/**
 * A kill-switch state as stored: sealed or not, who changed it last and why, and a pending unseal
 * request where the stage wants a second admin to approve one. It bears authority (an unsealed
 * record lets requests through), so it is MAC'd like a token item.
 */
export interface SealRecord {
  /** A tenant id, or `*` for the global seal. */
  readonly scope: string;
  readonly sealed: boolean;
  readonly reason: string;
  /** The token id that last sealed or unsealed. */
  readonly changedBy: string;
  readonly changedAt: string;
  /** The admin token that asked to unseal, awaiting a different admin's approval. */
  readonly unsealRequestedBy?: string;
  /** Bumped by every change; also in the MAC, so an old record replayed over a newer one still verifies only as what it was. */
  readonly revision: number;
}

/**
 * What the kill switch says of one tenant: open, or sealed and by what. A seal item whose MAC does
 * not verify counts as sealed (`failed_integrity`): a forged "unsealed" must not open anything.
 */
export type SealStatus =
  | { readonly sealed: false }
  | { readonly sealed: true; readonly scope: string; readonly why: "sealed" | "failed_integrity" };

export const OPEN: SealStatus = { sealed: false };

/** Reads the kill switch for a tenant: its own seal and the global one, in one round trip. */
export interface SealCheck {
  status(tenantId: string): Promise<SealStatus>;
}

/** Whether the global seal is on, for the health report. */
export interface GlobalSealState {
  globallySealed(): Promise<boolean>;
}

/** Drops a tenant's plaintext DEKs from this process's cache once it is seen sealed. */
export interface DataKeyDropper {
  forgetTenant(tenantId: string): void;
}

export const SEAL_SEAL_VERSION = "strongbox/seal/v1";

/** The bytes a seal record's MAC covers, every field in a fixed place behind the version tag. */
export function canonicalSeal(record: SealRecord): string {
  return JSON.stringify([
    SEAL_SEAL_VERSION,
    record.scope,
    record.sealed,
    record.reason,
    record.changedBy,
    record.changedAt,
    record.unsealRequestedBy ?? null,
    record.revision,
  ]);
}
