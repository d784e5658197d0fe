import type { components } from "./api-types.ts";

/** Every error code in the contract (`components.schemas.ErrorCode` of `/openapi.json`). */
export type ErrorCode = components["schemas"]["ErrorCode"];

/** Everything this client throws is one of these. */
export class StrongboxClientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The client was given something it cannot use (a malformed base URL, no reason); no request was sent. */
export class StrongboxConfigError extends StrongboxClientError {}

/** A read was asked for without a usable audit reason; no request was sent. */
export class ReasonRequiredError extends StrongboxConfigError {}

/** No answer came: the connection failed or timed out, on every attempt allowed. */
export class StrongboxNetworkError extends StrongboxClientError {
  readonly attempts: number;
  constructor(message: string, attempts: number, cause: unknown) {
    super(message, { cause });
    this.attempts = attempts;
  }
}

export interface ApiErrorInit {
  readonly status: number;
  readonly message: string;
  /** `X-Request-Id` of the answer: what the server's log line and audit record carry. */
  readonly requestId: string | undefined;
}

/** An error answer. Its subclass names the code; the message is the server's, which never holds a value. */
export abstract class StrongboxApiError extends StrongboxClientError {
  abstract readonly code: ErrorCode | "unexpected_response";
  readonly status: number;
  readonly requestId: string | undefined;
  constructor(init: ApiErrorInit) {
    super(`${init.message} (HTTP ${init.status}, request ${init.requestId ?? "unknown"})`);
    this.status = init.status;
    this.requestId = init.requestId;
  }
}

export class InvalidRequestError extends StrongboxApiError {
  readonly code = "invalid_request";
}
export class UnauthenticatedError extends StrongboxApiError {
  readonly code = "unauthenticated";
}
export class ForbiddenError extends StrongboxApiError {
  readonly code = "forbidden";
}
export class NotFoundError extends StrongboxApiError {
  readonly code = "not_found";
}
export class MethodNotAllowedError extends StrongboxApiError {
  readonly code = "method_not_allowed";
}
export class ConflictError extends StrongboxApiError {
  readonly code = "conflict";
}
export class PayloadTooLargeError extends StrongboxApiError {
  readonly code = "payload_too_large";
}
export class AuditRecordTooLargeError extends StrongboxApiError {
  readonly code = "audit_record_too_large";
}
export class UnsupportedMediaTypeError extends StrongboxApiError {
  readonly code = "unsupported_media_type";
}
export class HeadersTooLargeError extends StrongboxApiError {
  readonly code = "headers_too_large";
}
export class DecryptFailedError extends StrongboxApiError {
  readonly code = "decrypt_failed";
}
export class ResponseTooLargeError extends StrongboxApiError {
  readonly code = "response_too_large";
}
export class InternalError extends StrongboxApiError {
  readonly code = "internal_error";
}
export class KekMismatchError extends StrongboxApiError {
  readonly code = "kek_mismatch";
}
export class KeyringUnavailableError extends StrongboxApiError {
  readonly code = "keyring_unavailable";
}
export class StoreUnavailableError extends StrongboxApiError {
  readonly code = "store_unavailable";
}
export class AuditUnavailableError extends StrongboxApiError {
  readonly code = "audit_unavailable";
}
export class DekRetiredError extends StrongboxApiError {
  readonly code = "dek_retired";
}
export class DirectoryBackfillPendingError extends StrongboxApiError {
  readonly code = "directory_backfill_pending";
}
export class DispatchUnavailableError extends StrongboxApiError {
  readonly code = "dispatch_unavailable";
}

export class VersionDestroyedError extends StrongboxApiError {
  readonly code = "version_destroyed";
}
export class RecoveryWindowPassedError extends StrongboxApiError {
  readonly code = "recovery_window_passed";
}
export class TenantDeletedError extends StrongboxApiError {
  readonly code = "tenant_deleted";
}
export class ReferenceNotFoundError extends StrongboxApiError {
  readonly code = "reference_not_found";
}
export class ReferenceDeniedError extends StrongboxApiError {
  readonly code = "reference_denied";
}
export class ReferenceUnavailableError extends StrongboxApiError {
  readonly code = "reference_unavailable";
}
export class VerificationFailedError extends StrongboxApiError {
  readonly code = "verification_failed";
}
export class RateLimitedError extends StrongboxApiError {
  readonly code = "rate_limited";
}
export class DekExhaustedError extends StrongboxApiError {
  readonly code = "dek_exhausted";
}

/** An answer outside the contract: API Gateway's own 429 or 5xx, a proxy's HTML page, a body that is not JSON. */
export class UnexpectedResponseError extends StrongboxApiError {
  readonly code = "unexpected_response";
}

type ApiErrorClass = new (init: ApiErrorInit) => StrongboxApiError;

/** The class for each code; the type makes a code added to the contract a compile error until it has one. */
export const ERROR_CLASSES: { readonly [C in ErrorCode]: ApiErrorClass } = {
  invalid_request: InvalidRequestError,
  unauthenticated: UnauthenticatedError,
  forbidden: ForbiddenError,
  not_found: NotFoundError,
  method_not_allowed: MethodNotAllowedError,
  conflict: ConflictError,
  payload_too_large: PayloadTooLargeError,
  audit_record_too_large: AuditRecordTooLargeError,
  unsupported_media_type: UnsupportedMediaTypeError,
  headers_too_large: HeadersTooLargeError,
  decrypt_failed: DecryptFailedError,
  response_too_large: ResponseTooLargeError,
  internal_error: InternalError,
  kek_mismatch: KekMismatchError,
  keyring_unavailable: KeyringUnavailableError,
  store_unavailable: StoreUnavailableError,
  audit_unavailable: AuditUnavailableError,
  dek_retired: DekRetiredError,
  directory_backfill_pending: DirectoryBackfillPendingError,
  dispatch_unavailable: DispatchUnavailableError,
  version_destroyed: VersionDestroyedError,
  recovery_window_passed: RecoveryWindowPassedError,
  tenant_deleted: TenantDeletedError,
  reference_not_found: ReferenceNotFoundError,
  reference_denied: ReferenceDeniedError,
  reference_unavailable: ReferenceUnavailableError,
  verification_failed: VerificationFailedError,
  rate_limited: RateLimitedError,
  dek_exhausted: DekExhaustedError,
};

/** The typed error for an error answer: by its code when the body is the contract's, else unexpected. */
export function errorFromAnswer(
  status: number,
  body: unknown,
  requestId: string | undefined,
): StrongboxApiError {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof error?.code === "string" ? error.code : undefined;
  const ErrorClass =
    code !== undefined && Object.hasOwn(ERROR_CLASSES, code) ? ERROR_CLASSES[code as ErrorCode] : undefined;
  if (ErrorClass === undefined) {
    return new UnexpectedResponseError({ status, message: `unexpected answer`, requestId });
  }
  const message = typeof error?.message === "string" ? error.message : (code ?? "error");
  return new ErrorClass({ status, message, requestId });
}
