import type { AuditAction } from "./operations.ts";
import type { VerifierSpec } from "./verification.ts";

export const ROLES = ["admin", "operator", "runner", "auditor"] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling, as established by a verified bearer token or an IAM principal's binding. */
export interface Principal {
  /** What audit records name as the actor: the token id, or the caller's IAM ARN (session included). */
  readonly actor: string;
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

/** A DEK version whose wrapped key was destroyed once a scan proved no ciphertext used it. */
export interface RetiredDataKey {
  readonly version: number;
  readonly kekId: string;
  readonly createdAt: string;
  readonly retiredAt: string;
}

export interface Tenant {
  readonly tenantId: string;
  readonly createdAt: string;
  readonly currentDekVersion: number;
  readonly dataKeys: readonly WrappedDataKey[];
  readonly retiredDataKeys?: readonly RetiredDataKey[];
  /** When the current DEK version was created; retirement of older versions waits a grace period after it. */
  readonly dekRotatedAt?: string;
  /** Bumped by every change of the tenant item; changes are conditional on the revision they read. */
  readonly revision?: number;
  /**
   * When the tenant was deleted: its wrapped DEKs were destroyed in the same write, so nothing sealed
   * under them can be opened again. The item stays as a tombstone; every route on the tenant is 410.
   */
  readonly deletedAt?: string;
  /** The DEK versions that write destroyed. */
  readonly destroyedDekVersions?: readonly number[];
  /** Values sealed (or reserved for sealing) under the current DEK so far; a DEK rotation resets it. */
  readonly dekSeals?: number;
}

/** What a client may see of a tenant: no key material, wrapped or not. */
export interface TenantView {
  readonly tenantId: string;
  readonly createdAt: string;
  readonly currentDekVersion: number;
  readonly dataKeys: readonly { version: number; kekId: string; createdAt: string }[];
  readonly retiredDataKeys?: readonly RetiredDataKey[];
}

export interface SealedVersion {
  readonly version: number;
  readonly envelope: Uint8Array;
  readonly createdAt: string;
  /** The idempotency token the version was written with, as Secrets Manager's ClientRequestToken. */
  readonly clientRequestToken?: string;
  /** The actor that wrote it (token id or IAM ARN), or `system` for the service's own rotations; absent on older versions. */
  readonly createdBy?: string;
  /**
   * Set when the version is a `CredentialRef`: the reference, in plain text (it names where a value is,
   * never the value). The envelope seals the same text, and a read refuses a version where they differ.
   */
  readonly reference?: string;
  /**
   * Set only by the service's own rotation when it generated the value (never from a request), so a
   * pending version a caller wrote is never taken for one the rotation may test and promote itself.
   */
  readonly generated?: true;
}

export const STAGES = ["current", "pending", "previous"] as const;
export type Stage = (typeof STAGES)[number];

export const GENERATOR_KINDS = ["token", "password"] as const;

/** How the service makes a new value itself; secrets without one are rotated by an operator (BYOK). */
export interface GeneratorSpec {
  readonly kind: (typeof GENERATOR_KINDS)[number];
  readonly length: number;
  /** Characters to draw from; a default per kind when absent. */
  readonly alphabet?: string;
}

export interface RotationPolicy {
  readonly periodDays?: number;
  /** Asked before a pending version is promoted, by hand or on schedule; see domain/verification.ts. */
  readonly verifier?: VerifierSpec;
  readonly dueAt?: string;
  readonly generator?: GeneratorSpec;
  readonly lastRotatedAt?: string;
  /** The due date a "rotation due" event was last emitted for, so each due date is announced once. */
  readonly notifiedDueAt?: string;
}

/** The secret's head: its current version inline, so a current read is one item. */
export interface SecretHead {
  readonly tenantId: string;
  readonly name: string;
  readonly current: SealedVersion;
  readonly deletedAt?: string;
  readonly updatedAt: string;
  /** Bumped by every change of the head; head changes are conditional on the revision they read. */
  readonly revision: number;
  /** The highest version ever allocated, so that a rollback never lets a version number be reused. */
  readonly latestVersion: number;
  /** The version labelled `previous`: the one that was current before the last promotion. */
  readonly previousVersion?: number;
  /** The version labelled `pending`, written but not yet promoted, kept inline like the current one. */
  readonly pending?: SealedVersion;
  readonly rotation?: RotationPolicy;
  /**
   * The first version of the secret's present history. A write over a deleted secret starts a new
   * history here, and nothing numbered below it is readable or listed again.
   */
  readonly historyStart?: number;
  /** At most this many versions are kept; the oldest unlabelled ones past it are destroyed. */
  readonly maxVersions?: number;
  /** For a current version that is a reference: the referenced secret's next rotation, as of the write. */
  readonly referenceRotationDueAt?: string;
}

export const VERSION_LABELS = ["current", "pending", "previous"] as const;

/** What the versions listing shows of one version: never its value or ciphertext. */
export interface VersionMetadata {
  readonly version: number;
  readonly createdAt: string;
  readonly createdBy?: string;
  readonly labels: readonly (typeof VERSION_LABELS)[number][];
  /** The DEK version its ciphertext is sealed under; absent once destroyed. */
  readonly dekVersion?: number;
  readonly destroyed: boolean;
  readonly destroyedAt?: string;
}

export interface SecretSummary {
  readonly name: string;
  readonly version: number;
  readonly updatedAt: string;
  readonly pendingVersion?: number;
  readonly rotationDueAt?: string;
  /** The `CredentialRef` the current version holds; listings show it and never resolve it. */
  readonly reference?: string;
}

export interface SecretValue {
  readonly name: string;
  readonly version: number;
  readonly value: string;
  readonly createdAt: string;
  /** The reference the value was resolved from, when the version is one. */
  readonly reference?: string;
  /**
   * When the secret is next due for rotation, for clients that cache the value until then; for a
   * reference, the referenced secret's next rotation (Secrets Manager's NextRotationDate).
   */
  readonly rotationDueAt?: string;
  /** The version labelled `pending`, if any: the value is about to change. */
  readonly pendingVersion?: number;
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

/**
 * Grants an IAM principal (a role or a user, named by its ARN) a role over tenants, as a token would.
 * The id is derived from the principal (shared/crypto/binding-id.ts), so a principal has one binding.
 */
export interface BindingRecord {
  readonly bindingId: string;
  /** As the admin gave it, path included; matched by partition, account, kind and name (principal-arn.ts). */
  readonly principalArn: string;
  readonly role: Role;
  readonly tenants: readonly string[];
  readonly createdAt: string;
  /** Set by a delete: the item stays, sealed, so a delete cannot be undone by restoring an older item. */
  readonly deletedAt?: string;
}

/** What a client sees of a binding. */
export type BindingView = Omit<BindingRecord, "deletedAt">;

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
  /**
   * `aws` for calls on the service's KMS keys, taken from CloudTrail, and for refused IAM callers that
   * no binding names (the actor is then an IAM ARN);
   * `system` for changes the service makes on its own schedule, such as a re-encryption sweep.
   */
  readonly role: Role | "anonymous" | "aws" | "system";
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
