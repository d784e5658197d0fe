/**
 * The typed error family every layer throws. Each error carries the HTTP status and the stable code
 * clients see in `{"error":{"code","message"}}`. Messages are written for operators and must never
 * contain a secret value, a token or key material: callers pass only identifiers into them.
 */
export abstract class StrongboxError extends Error {
  abstract readonly status: number;
  abstract readonly code: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class ValidationError extends StrongboxError {
  readonly status = 400;
  readonly code = "invalid_request";
}

export class AuthenticationError extends StrongboxError {
  readonly status = 401;
  readonly code = "unauthenticated";
}

export class AuthorizationError extends StrongboxError {
  readonly status = 403;
  readonly code = "forbidden";
}

export class NotFoundError extends StrongboxError {
  readonly status = 404;
  readonly code = "not_found";
}

export class ConflictError extends StrongboxError {
  readonly status = 409;
  readonly code = "conflict";
}

export class PayloadTooLargeError extends StrongboxError {
  readonly status = 413;
  readonly code = "payload_too_large";
}

/** The KEK that wrapped a DEK is not among the configured ones: the runbooks' most common incident. */
export class KekMismatchError extends StrongboxError {
  readonly status = 503;
  readonly code = "kek_mismatch";

  constructor(
    readonly tenantId: string,
    readonly dekVersion: number,
    readonly wrappedBy: string,
    readonly configured: readonly string[],
  ) {
    super(
      `tenant ${tenantId}'s DEK v${dekVersion} was wrapped by KEK ${wrappedBy}; configured KEKs: ${configured.join(", ")}`,
    );
  }
}

/** Authenticated decryption failed: the ciphertext was altered, moved, or sealed under another key. */
export class DecryptError extends StrongboxError {
  readonly status = 500;
  readonly code = "decrypt_failed";
}

/** The KEK keeper (KMS or the local keyring) could not be reached or refused the call. */
export class KeyringUnavailableError extends StrongboxError {
  readonly status = 503;
  readonly code = "keyring_unavailable";
}

export class StoreUnavailableError extends StrongboxError {
  readonly status = 503;
  readonly code = "store_unavailable";
}

/**
 * Work over every tenant needs the tenant directory, and this table still has tenants from before it
 * existed. Only the rotation function (and `npm start`) may run the one-off Scan that adds them, so a
 * request that needs the directory is refused until it has: retrying after the next rotation run works.
 */
export class DirectoryBackfillPendingError extends StrongboxError {
  readonly status = 503;
  readonly code = "directory_backfill_pending";

  constructor() {
    super("the tenant directory is being backfilled by the rotation function; retry after its next run");
  }
}

/** Work handed to another function (the KEK re-wrap, to the rotation function) could not be handed over. */
export class DispatchUnavailableError extends StrongboxError {
  readonly status = 503;
  readonly code = "dispatch_unavailable";
}

/** A read whose audit record cannot be written is refused, as Vault's audit devices do. */
export class AuditUnavailableError extends StrongboxError {
  readonly status = 503;
  readonly code = "audit_unavailable";
}

/** Start-up configuration is missing or malformed; the message names the variable to fix. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * A ciphertext names a DEK version that was retired after a scan found nothing sealed under it: the
 * item was re-encrypted after the caller read it, so reading it again gives the current ciphertext.
 */
export class DekRetiredError extends StrongboxError {
  readonly status = 503;
  readonly code = "dek_retired";
}

/**
 * One audit record that could not fit any block the store accepts, even alone. Long free-text fields
 * are capped when a record is built, so only oversized input can get here; nothing is done for it.
 */
export class AuditRecordTooLargeError extends StrongboxError {
  readonly status = 413;
  readonly code = "audit_record_too_large";
}

/** The version's ciphertext was destroyed on request or past `maxVersions`; nothing can bring it back. */
export class VersionDestroyedError extends StrongboxError {
  readonly status = 410;
  readonly code = "version_destroyed";
}

/** A deleted secret can be undeleted only within the recovery window; after it, only purged or overwritten. */
export class RecoveryWindowPassedError extends StrongboxError {
  readonly status = 410;
  readonly code = "recovery_window_passed";
}

/** The tenant was deleted (crypto-shredded): nothing of it can be read or written again. */
export class TenantDeletedError extends StrongboxError {
  readonly status = 410;
  readonly code = "tenant_deleted";
}

/** The referenced secret, its version stage, or its `#jsonKey` does not exist: the reference is wrong. */
export class ReferenceNotFoundError extends StrongboxError {
  readonly status = 422;
  readonly code = "reference_not_found";
}

/** Secrets Manager refused the service's role: the reference is outside what infra grants. */
export class ReferenceDeniedError extends StrongboxError {
  readonly status = 502;
  readonly code = "reference_denied";
}

/** Secrets Manager could not be reached, throttled, or failed: retry later. */
export class ReferenceUnavailableError extends StrongboxError {
  readonly status = 503;
  readonly code = "reference_unavailable";
}

/** The rotation policy's verifier did not answer success: the pending version stays pending. */
export class VerificationFailedError extends StrongboxError {
  readonly status = 409;
  readonly code = "verification_failed";
}

/** A costly operation asked for again sooner than its minimum interval allows; `Retry-After` says when. */
export class RateLimitedError extends StrongboxError {
  readonly status = 429;
  readonly code = "rate_limited";
  readonly retryAfterSeconds: number;

  constructor(message: string, retryAfterSeconds: number) {
    super(message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * A tenant's current DEK has sealed as many values as its hard limit allows (random 96-bit IVs must
 * stay well below 2^32 uses of one key); writes wait for the next DEK, which the scheduled runner makes.
 */
export class DekExhaustedError extends StrongboxError {
  readonly status = 503;
  readonly code = "dek_exhausted";
}
