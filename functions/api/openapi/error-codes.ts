import type { OpenAPIV3_1 } from "openapi-types";

/**
 * Every error code the API answers with, and its status. What each means is the errors table in
 * docs/api.md; this is what the document and the client are built from, and a test holds it to the
 * error classes' own codes and statuses.
 */
export const ERROR_STATUS = {
  invalid_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  audit_record_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  headers_too_large: 431,
  decrypt_failed: 500,
  response_too_large: 500,
  internal_error: 500,
  kek_mismatch: 503,
  keyring_unavailable: 503,
  store_unavailable: 503,
  audit_unavailable: 503,
  dek_retired: 503,
  directory_backfill_pending: 503,
  dispatch_unavailable: 503,
  dek_exhausted: 503,
  // The secret lifecycle (issue 12 items 4 to 7).
  version_destroyed: 410,
  recovery_window_passed: 410,
  tenant_deleted: 410,
  reference_not_found: 422,
  reference_denied: 502,
  reference_unavailable: 503,
  verification_failed: 409,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;
export const ERROR_CODES = Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]];

/** What any route may answer: a malformed request or one over the limits, and a failure of its own. */
export const ANY_ROUTE: readonly ErrorCode[] = [
  "invalid_request",
  "payload_too_large",
  "headers_too_large",
  "internal_error",
];

/** What a route behind a token adds: the refusals, and the token check's own dependencies. */
export const AUTHENTICATED: readonly ErrorCode[] = [
  ...ANY_ROUTE,
  "unauthenticated",
  "forbidden",
  "audit_record_too_large",
  "keyring_unavailable",
  "store_unavailable",
  "audit_unavailable",
];

/** A route that reads or writes a tenant's secrets under its DEK; a deleted tenant has none left. */
export const SEALED: readonly ErrorCode[] = [
  "not_found",
  "decrypt_failed",
  "kek_mismatch",
  "dek_retired",
  "tenant_deleted",
  "dek_exhausted",
];

/** A route whose secret may hold a CredentialRef, resolved or described through Secrets Manager. */
export const REFERENCED: readonly ErrorCode[] = [
  "reference_not_found",
  "reference_denied",
  "reference_unavailable",
];

/** A route that takes a JSON body. */
export const JSON_BODY: readonly ErrorCode[] = ["unsupported_media_type"];

/** A listing or export, whose answer on Lambda is bounded by the 6 MiB response limit. */
export const BOUNDED: readonly ErrorCode[] = ["response_too_large"];

const statusText: Record<number, string> = {
  400: "Bad input, or a malformed HTTP request",
  401: "No token, or an unknown, expired or revoked one",
  403: "The role lacks the permission, or the token does not reach the tenant",
  404: "No such tenant, secret or version",
  405: "The route does not take this method",
  409: "A conflict with the secret's state",
  410: "Gone for good: a destroyed version, a deleted tenant, a recovery window past",
  413: "Too large",
  415: "The body is not application/json",
  422: "A reference that cannot be resolved as written",
  429: "Too soon: see Retry-After",
  431: "Request headers too large",
  500: "The service failed",
  502: "Secrets Manager refused the service's role",
  503: "A dependency is unavailable; nothing was returned or changed",
};

/** The error body, `{"error":{"code","message"}}`, with the codes one status can carry. */
function errorBody(codes: readonly ErrorCode[]): OpenAPIV3_1.SchemaObject {
  return {
    type: "object",
    required: ["error"],
    additionalProperties: false,
    properties: {
      error: {
        type: "object",
        required: ["code", "message"],
        additionalProperties: false,
        properties: {
          code: { type: "string", enum: [...codes] },
          message: { type: "string", description: "For operators; never holds a value, token or key." },
        },
      },
    },
  };
}

/** The error responses for a route's codes, one per status; each code once, in the table's order. */
export function errorResponses(codes: readonly ErrorCode[]): Record<string, OpenAPIV3_1.ResponseObject> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of ERROR_CODES.filter((known) => codes.includes(known))) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, list]) => [
      String(status),
      {
        description: `${statusText[status] ?? "Error"}: ${list.join(", ")} (docs/api.md#errors)`,
        content: { "application/json": { schema: errorBody(list) } },
      },
    ]),
  );
}
