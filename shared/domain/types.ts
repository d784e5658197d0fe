export const ROLES = ["admin", "operator", "runner", "auditor"] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling, as established by a verified bearer token. */
export interface Principal {
  readonly tokenId: string;
  readonly role: Role;
  /** Tenants the token is scoped to; admin tokens reach every tenant. */
  readonly tenants: readonly string[];
}

export interface WrappedDataKey {
  readonly version: number;
  /** Identifies the KEK that wrapped this DEK: a local fingerprint or a KMS key ARN. Never secret. */
  readonly kekId: string;
  readonly ciphertext: Uint8Array;
  readonly createdAt: string;
}

export interface Tenant {
  readonly tenantId: string;
  readonly createdAt: string;
  readonly currentDekVersion: number;
  readonly dataKeys: readonly WrappedDataKey[];
}

/** What a client may see of a tenant: no key material, wrapped or not. */
export interface TenantView {
  readonly tenantId: string;
  readonly createdAt: string;
  readonly currentDekVersion: number;
  readonly dataKeys: readonly { version: number; kekId: string; createdAt: string }[];
}

export interface SealedVersion {
  readonly version: number;
  readonly envelope: Uint8Array;
  readonly createdAt: string;
}

/** The secret's head: its current version inline, so a current read is one item. */
export interface SecretHead {
  readonly tenantId: string;
  readonly name: string;
  readonly current: SealedVersion;
  readonly deletedAt?: string;
  readonly updatedAt: string;
}

export interface SecretSummary {
  readonly name: string;
  readonly version: number;
  readonly updatedAt: string;
}

export interface SecretValue {
  readonly name: string;
  readonly version: number;
  readonly value: string;
  readonly createdAt: string;
}

export interface TokenRecord {
  readonly tokenId: string;
  readonly secretHash: Uint8Array;
  readonly role: Role;
  readonly tenants: readonly string[];
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly revokedAt?: string;
}

export const AUDIT_ACTIONS = [
  "tenant.create",
  "tenant.read",
  "secret.read",
  "secret.write",
  "secret.delete",
  "secret.list",
  "token.create",
  "token.revoke",
  "audit.read",
  "request.denied",
  "audit.verify",
  "audit.export",
  "kms.call",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];
/**
 * A change is recorded as an `attempt` before it is made and with its outcome after, so no change can
 * exist without a record even if the process dies between the two.
 */
export type AuditOutcome = "attempt" | "success" | "denied" | "failure";

export interface AuditEvent {
  readonly tenantId: string;
  readonly action: AuditAction;
  readonly outcome: AuditOutcome;
  readonly actor: string;
  /** `aws` for calls on the service's KMS keys, taken from CloudTrail; the actor is then an IAM ARN. */
  readonly role: Role | "anonymous" | "aws";
  readonly requestId: string;
  readonly time: string;
  readonly secretName?: string;
  readonly version?: number;
  readonly reason?: string;
  readonly detail?: string;
  /** How many events this record stands for: repeated denials by one actor are collapsed into one. */
  readonly count?: number;
  /** `high` marks what an operator must look at: KMS anomalies. */
  readonly severity?: "high";
}

/** Audit events about no single tenant (token changes, unauthenticated calls) live under this scope. */
export const SYSTEM_SCOPE = "_system";

/** One page of a listing; `nextCursor` continues it and is absent on the last page. */
export interface Page<T> {
  readonly items: T[];
  readonly nextCursor?: string;
}
