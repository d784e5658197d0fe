/**
 * Break-glass (seed 002 §4.2): time-limited, audited elevated access to one tenant that needs another
 * admin's approval. The record bears authority (its credential hash lets a caller in), so it is MAC'd
 * like a token item.
 */
export interface BreakGlassRecord {
  readonly id: string;
  readonly tenantId: string;
  /** The token id that asked. */
  readonly requester: string;
  readonly reason: string;
  /** At most 60; the credential's life from its approval. */
  readonly durationMinutes: number;
  readonly status: "pending" | "approved" | "active" | "revoked";
  readonly createdAt: string;
  readonly approver?: string;
  readonly approvedAt?: string;
  /** The deadline: approval time plus the duration. Nothing is usable after it. */
  readonly expiresAt?: string;
  /** Hash of the credential's secret half, set once at activation. */
  readonly credentialHash?: Uint8Array;
  readonly revokedAt?: string;
  readonly revokedBy?: string;
}

export const MAX_BREAK_GLASS_MINUTES = 60;

export const BREAK_GLASS_SEAL_VERSION = "strongbox/break-glass/v1";

export function canonicalBreakGlass(record: BreakGlassRecord): string {
  return JSON.stringify([
    BREAK_GLASS_SEAL_VERSION,
    record.id,
    record.tenantId,
    record.requester,
    record.reason,
    record.durationMinutes,
    record.status,
    record.createdAt,
    record.approver ?? null,
    record.approvedAt ?? null,
    record.expiresAt ?? null,
    record.credentialHash === undefined ? null : Buffer.from(record.credentialHash).toString("hex"),
    record.revokedAt ?? null,
    record.revokedBy ?? null,
  ]);
}

/** What a break-glass route answers: the record without its credential hash. */
export type BreakGlassView = Omit<BreakGlassRecord, "credentialHash">;

/** The "Break Glass Activated" event on the stage's bus: identifiers only. */
export const BREAK_GLASS_ACTIVATED = {
  source: "strongbox.api",
  detailType: "Break Glass Activated",
} as const;

export interface BreakGlassActivation {
  readonly requestId: string;
  readonly tenantId: string;
  readonly requester: string;
  readonly approver: string;
  readonly expiresAt: string;
}

/** Publishes activations; a failed publish refuses the activation, so none goes unannounced. */
export interface BreakGlassEvents {
  activated(activation: BreakGlassActivation): Promise<void>;
}
