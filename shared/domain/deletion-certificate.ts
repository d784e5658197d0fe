import type { ChainHead } from "./audit-chain.ts";

/** Part of what a certificate's MAC covers, so no other kind of sealed item verifies as one. */
export const DELETION_CERTIFICATE_VERSION = "strongbox/deletion-certificate/v1";

/** What a tenant deletion removed: secret heads, archived versions, and anything else in its partition. */
export interface DeletionCounts {
  readonly secrets: number;
  readonly versions: number;
  readonly other: number;
}

/**
 * The record that a tenant was crypto-shredded and its items removed, MAC'd under the item-integrity
 * key (the audit keeper's, never in the table), so an edited or forged certificate does not verify.
 */
export interface DeletionCertificate {
  readonly tenantId: string;
  /** The actor (token id or IAM ARN) that asked for the deletion. */
  readonly requestedBy: string;
  /** When the wrapped DEKs were destroyed: from then on nothing of the tenant could be decrypted. */
  readonly shreddedAt: string;
  readonly completedAt: string;
  readonly dekVersionsDestroyed: readonly number[];
  readonly items: DeletionCounts;
  /** The tenant's audit chain head when the certificate was made; the chain itself is kept. */
  readonly auditHead: ChainHead | null;
  readonly mac: string;
  readonly macKeyRef: string;
}

export type UnsealedCertificate = Omit<DeletionCertificate, "mac" | "macKeyRef">;

/** The bytes the MAC covers: every field in a fixed place, behind the version tag. */
export function canonicalCertificate(certificate: UnsealedCertificate): string {
  return JSON.stringify([
    DELETION_CERTIFICATE_VERSION,
    certificate.tenantId,
    certificate.requestedBy,
    certificate.shreddedAt,
    certificate.completedAt,
    [...certificate.dekVersionsDestroyed],
    [certificate.items.secrets, certificate.items.versions, certificate.items.other],
    certificate.auditHead === null ? null : [certificate.auditHead.sequence, certificate.auditHead.hash],
  ]);
}
