import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SecretRepository } from "../../shared/storage/secret-repository.ts";
import { type ApiResponse, type Harness, readResponse, startHarness } from "../../testing/harness.ts";

/*
 * Bad input of every kind, each answered with a 4xx and exactly {"error":{"code","message"}}, never a
 * 500, never echoing what was sent, and never leaving a half-written secret behind.
 */

/** Put inside bad values: an error message that quotes the input would carry it back. */
const CANARY = "CANARY-5e1f-must-not-echo";
const TENANT = "acme";
const TARGET = `/v1/tenants/${TENANT}/secrets/target`;
const TARGET_VALUE = "original-v2";
const REASON = { "x-audit-reason": "bad input test" };
const SEAL = `/v1/tenants/${TENANT}/seal`;
/** A tenant sealed before the cases run, whose value must never come back. */
const SEALED = "sealed-co";

let h: Harness;
let admin: string;
let runnerTokenId: string;

interface BadCase {
  readonly title: string;
  readonly method: string;
  readonly path: string;
  /** A raw body (string or bytes) or, with `json`, a value to serialise. */
  readonly body?: string | Uint8Array;
  readonly json?: unknown;
  /** null sends no Content-Type; the default for a body is application/json. */
  readonly contentType?: string | null;
  /** null sends no Authorization; the default is the admin token, so the request reaches validation. */
  readonly authorization?: string | null;
  readonly headers?: Record<string, string>;
  readonly status: number;
  readonly code: string;
}

const utf8 = new TextEncoder();
const bytes = (...parts: (string | number[])[]) =>
  new Uint8Array(parts.flatMap((part) => (typeof part === "string" ? [...utf8.encode(part)] : part)));
const cursorOf = (key: unknown) => Buffer.from(JSON.stringify(key)).toString("base64url");
const put = (path: string, json: unknown) => ({ method: "PUT", path, json });
const read = (query: string, headers: Record<string, string> = REASON) => ({
  method: "GET",
  path: `${TARGET}${query}`,
  headers,
});
const invalid = { status: 400, code: "invalid_request" } as const;

// About 32 800 characters but 65 539 bytes of UTF-8: over the byte limit, well under 64 Ki characters.
const multibyteValue = `${CANARY}${"é".repeat((65_537 - CANARY.length) / 2 + 1)}`;
/** Stands for the runner token's header in a case's `authorization`, as the token exists only once issued. */
const RUNNER = "runner's token";
let runner: string;
const validToken = { role: "runner", tenants: [TENANT], ttlSeconds: 600 };
const validBinding = {
  principalArn: "arn:aws:iam::111111111111:role/services/reporting",
  role: "runner",
  tenants: [TENANT],
};

const CASES: readonly BadCase[] = [
  // Bodies that are not a JSON object.
  { title: "malformed JSON", ...put(TARGET, undefined), body: `{"value":"${CANARY}`, ...invalid },
  {
    title: "JSON followed by garbage",
    ...put(TARGET, undefined),
    body: `{"value":"x"} ${CANARY}`,
    ...invalid,
  },
  { title: "an empty body", ...put(TARGET, undefined), body: "", ...invalid },
  { title: "a JSON array", ...put(TARGET, [CANARY]), ...invalid },
  { title: "a JSON string", ...put(TARGET, CANARY), ...invalid },
  { title: "JSON null", ...put(TARGET, null), ...invalid },
  { title: "a JSON number", ...put(TARGET, 42), ...invalid },
  // Wrong types and ranges in the secret body.
  { title: "value as a number", ...put(TARGET, { value: 12345 }), ...invalid },
  { title: "value as null", ...put(TARGET, { value: null }), ...invalid },
  { title: "value as an object", ...put(TARGET, { value: { nested: CANARY } }), ...invalid },
  { title: "cas as a string", ...put(TARGET, { value: CANARY, cas: "2" }), ...invalid },
  { title: "cas negative", ...put(TARGET, { value: CANARY, cas: -1 }), ...invalid },
  { title: "cas a float", ...put(TARGET, { value: CANARY, cas: 1.5 }), ...invalid },
  { title: "cas beyond the safe integers", ...put(TARGET, { value: CANARY, cas: 2 ** 53 }), ...invalid },
  {
    title: "cas a version that does not exist yet",
    ...put(TARGET, { value: CANARY, cas: 3 }),
    status: 409,
    code: "conflict",
  },
  { title: "missing value", ...put(TARGET, { cas: 2 }), ...invalid },
  { title: "an empty object", ...put(TARGET, {}), ...invalid },
  { title: "an unknown field in the secret body", ...put(TARGET, { value: "x", extra: CANARY }), ...invalid },
  {
    title: "a value pasted as an unknown field's name",
    ...put(TARGET, { value: "x", [CANARY]: 1 }),
    ...invalid,
  },
  {
    title: "a __proto__ key in the secret body",
    ...put(TARGET, undefined),
    body: `{"value":"x","__proto__":{"cas":2}}`,
    ...invalid,
  },
  // Values the store must not take.
  {
    title: "a value of 65 537 ASCII bytes",
    ...put(TARGET, { value: `${CANARY}${"a".repeat(65_537 - CANARY.length)}` }),
    ...invalid,
  },
  {
    title: "a multibyte value over 64 KiB of UTF-8 but under 64 Ki characters",
    ...put(TARGET, { value: multibyteValue }),
    ...invalid,
  },
  {
    title: "a value with a lone high surrogate",
    ...put(TARGET, undefined),
    body: `{"value":"${CANARY}\\ud800"}`,
    ...invalid,
  },
  {
    title: "a value with a lone low surrogate",
    ...put(TARGET, undefined),
    body: `{"value":"\\udc00${CANARY}"}`,
    ...invalid,
  },
  {
    title: "a body with invalid UTF-8 bytes",
    ...put(TARGET, undefined),
    body: bytes(`{"value":"${CANARY}`, [0xff, 0xfe], `"}`),
    ...invalid,
  },
  {
    title: "a body with an overlong UTF-8 encoding",
    ...put(TARGET, undefined),
    body: bytes(`{"value":"${CANARY}`, [0xc0, 0xaf], `"}`),
    ...invalid,
  },
  {
    title: "a body over the 512 KiB body limit",
    ...put(TARGET, undefined),
    body: JSON.stringify({ value: `${CANARY}${"a".repeat(600_000)}` }),
    status: 413,
    code: "payload_too_large",
  },
  // Content types.
  {
    title: "Content-Type text/plain",
    ...put(TARGET, { value: CANARY }),
    contentType: "text/plain",
    status: 415,
    code: "unsupported_media_type",
  },
  {
    title: "no Content-Type",
    ...put(TARGET, { value: CANARY }),
    contentType: null,
    status: 415,
    code: "unsupported_media_type",
  },
  {
    title: "JSON declared as latin1",
    ...put(TARGET, { value: CANARY }),
    contentType: "application/json; charset=latin1",
    status: 415,
    code: "unsupported_media_type",
  },
  {
    title: "a form body",
    ...put(TARGET, undefined),
    body: `value=${CANARY}`,
    contentType: "application/x-www-form-urlencoded",
    status: 415,
    code: "unsupported_media_type",
  },
  // Secret names.
  {
    title: "a NUL in the secret name",
    ...put(`/v1/tenants/${TENANT}/secrets/a%00${CANARY}`, { value: CANARY }),
    ...invalid,
  },
  {
    title: "a newline in the secret name",
    ...put(`/v1/tenants/${TENANT}/secrets/a%0A${CANARY}`, { value: CANARY }),
    ...invalid,
  },
  {
    title: "a carriage return in the secret name",
    ...put(`/v1/tenants/${TENANT}/secrets/a%0D${CANARY}`, { value: CANARY }),
    ...invalid,
  },
  {
    title: "a tab in the secret name",
    ...put(`/v1/tenants/${TENANT}/secrets/a%09b`, { value: CANARY }),
    ...invalid,
  },
  {
    title: "a DEL in the secret name",
    ...put(`/v1/tenants/${TENANT}/secrets/a%7Fb`, { value: CANARY }),
    ...invalid,
  },
  {
    title: "a space in the secret name",
    ...put(`/v1/tenants/${TENANT}/secrets/a%20b`, { value: CANARY }),
    ...invalid,
  },
  {
    title: "a non-ASCII secret name",
    ...put(`/v1/tenants/${TENANT}/secrets/caf%C3%A9`, { value: CANARY }),
    ...invalid,
  },
  // URL parsing folds `..` and `%2e%2e` segments before routing, so these reach no route at all.
  {
    title: "a secret name of ..",
    ...put(`/v1/tenants/${TENANT}/secrets/..`, { value: CANARY }),
    status: 404,
    code: "not_found",
  },
  {
    title: "a secret name of %2e%2e",
    ...put(`/v1/tenants/${TENANT}/secrets/%2e%2e`, { value: CANARY }),
    status: 404,
    code: "not_found",
  },
  {
    title: "a secret name of ..%2f..%2fetc",
    ...put(`/v1/tenants/${TENANT}/secrets/..%2f..%2fetc`, { value: CANARY }),
    ...invalid,
  },
  {
    title: "a secret name with an encoded slash",
    ...put(`/v1/tenants/${TENANT}/secrets/a%2Ftarget`, { value: CANARY }),
    ...invalid,
  },
  {
    title: "a secret name starting with a dot",
    ...put(`/v1/tenants/${TENANT}/secrets/.env`, { value: CANARY }),
    ...invalid,
  },
  {
    title: "a secret name starting with a dash",
    ...put(`/v1/tenants/${TENANT}/secrets/-rf`, { value: CANARY }),
    ...invalid,
  },
  {
    title: "a secret name of 129 characters",
    ...put(`/v1/tenants/${TENANT}/secrets/${"n".repeat(129)}`, { value: CANARY }),
    ...invalid,
  },
  {
    title: "a read of a secret name of 129 characters",
    method: "GET",
    path: `/v1/tenants/${TENANT}/secrets/${"n".repeat(129)}`,
    headers: REASON,
    ...invalid,
  },
  {
    title: "a delete of a secret name starting with a dot",
    method: "DELETE",
    path: `/v1/tenants/${TENANT}/secrets/.target`,
    ...invalid,
  },
  // Tenant ids, in the path and in the body.
  { title: "an uppercase tenant id in the path", method: "GET", path: "/v1/tenants/ACME", ...invalid },
  {
    title: "a tenant id with a leading dash in the path",
    method: "GET",
    path: "/v1/tenants/-acme",
    ...invalid,
  },
  { title: "a one-character tenant id in the path", method: "GET", path: "/v1/tenants/a", ...invalid },
  {
    title: "a 64-character tenant id in the path",
    method: "GET",
    path: `/v1/tenants/${"a".repeat(64)}`,
    ...invalid,
  },
  {
    title: "an underscore in the tenant id in the path",
    ...put("/v1/tenants/ac_me/secrets/target", { value: CANARY }),
    ...invalid,
  },
  {
    title: "an uppercase tenant id to create",
    method: "POST",
    path: "/v1/tenants",
    json: { tenantId: "FRESH" },
    ...invalid,
  },
  {
    title: "a tenant id with a leading dash to create",
    method: "POST",
    path: "/v1/tenants",
    json: { tenantId: "-fresh" },
    ...invalid,
  },
  {
    title: "a one-character tenant id to create",
    method: "POST",
    path: "/v1/tenants",
    json: { tenantId: "f" },
    ...invalid,
  },
  {
    title: "a 64-character tenant id to create",
    method: "POST",
    path: "/v1/tenants",
    json: { tenantId: "f".repeat(64) },
    ...invalid,
  },
  {
    title: "an underscore in a tenant id to create",
    method: "POST",
    path: "/v1/tenants",
    json: { tenantId: "fr_esh" },
    ...invalid,
  },
  {
    title: "a tenant id as a number",
    method: "POST",
    path: "/v1/tenants",
    json: { tenantId: 42 },
    ...invalid,
  },
  {
    title: "an unknown field in the tenant body",
    method: "POST",
    path: "/v1/tenants",
    json: { tenantId: "fresh", extra: CANARY },
    ...invalid,
  },
  {
    title: "creating a tenant that exists",
    method: "POST",
    path: "/v1/tenants",
    json: { tenantId: TENANT },
    status: 409,
    code: "conflict",
  },
  // The audit reason a read must carry.
  { title: "a read without X-Audit-Reason", ...read("", {}), ...invalid },
  { title: "an empty X-Audit-Reason", ...read("", { "x-audit-reason": "" }), ...invalid },
  { title: "a whitespace-only X-Audit-Reason", ...read("", { "x-audit-reason": "   \t  " }), ...invalid },
  {
    title: "an X-Audit-Reason of 257 characters",
    ...read("", { "x-audit-reason": `${CANARY}${"r".repeat(257 - CANARY.length)}` }),
    ...invalid,
  },
  {
    title: "an X-Audit-Reason of 20 KB",
    ...read("", { "x-audit-reason": `${CANARY}${"r".repeat(20_000)}` }),
    ...invalid,
  },
  {
    title: "a control character in X-Audit-Reason",
    ...read("", { "x-audit-reason": `why\u0001${CANARY}` }),
    ...invalid,
  },
  {
    title: "an escape character in X-Audit-Reason",
    ...read("", { "x-audit-reason": `why\u001b[31m${CANARY}` }),
    ...invalid,
  },
  { title: "a tab inside X-Audit-Reason", ...read("", { "x-audit-reason": `why\t${CANARY}` }), ...invalid },
  { title: "a DEL in X-Audit-Reason", ...read("", { "x-audit-reason": `why\u007f${CANARY}` }), ...invalid },
  // Authorization headers that are not a valid bearer token.
  {
    title: "a 20 KB Authorization header",
    ...read(""),
    authorization: `Bearer sbx_${CANARY}${"x".repeat(20_000)}`,
    status: 401,
    code: "unauthenticated",
  },
  {
    title: "a Basic Authorization header",
    ...read(""),
    authorization: `Basic ${Buffer.from(`admin:${CANARY}`).toString("base64")}`,
    status: 401,
    code: "unauthenticated",
  },
  {
    title: "Bearer without a token",
    ...read(""),
    authorization: "Bearer ",
    status: 401,
    code: "unauthenticated",
  },
  {
    title: "a bearer token that is not a Strongbox token",
    ...read(""),
    authorization: `Bearer ${CANARY}`,
    status: 401,
    code: "unauthenticated",
  },
  {
    title: "a no-Authorization request",
    ...read(""),
    authorization: null,
    status: 401,
    code: "unauthenticated",
  },
  // The version query.
  { title: "version=0", ...read("?version=0"), ...invalid },
  { title: "version=-1", ...read("?version=-1"), ...invalid },
  { title: "version=abc", ...read(`?version=abc${CANARY}`), ...invalid },
  { title: "version=1.5", ...read("?version=1.5"), ...invalid },
  { title: "version=1e3", ...read("?version=1e3"), ...invalid },
  { title: "version with a leading zero", ...read("?version=01"), ...invalid },
  { title: "a huge version", ...read("?version=99999999999999999999"), ...invalid },
  { title: "an empty version", ...read("?version="), ...invalid },
  // Query parameters no route takes, and bad paging.
  { title: "an unknown query parameter on a read", ...read(`?verison=1&x=${CANARY}`), ...invalid },
  {
    title: "an unknown query parameter on a list",
    method: "GET",
    path: `/v1/tenants/${TENANT}/secrets?sort=${CANARY}`,
    ...invalid,
  },
  {
    title: "an unknown query parameter on the audit trail",
    method: "GET",
    path: `/v1/tenants/${TENANT}/audit?since=${CANARY}`,
    ...invalid,
  },
  {
    title: "an unknown query parameter on the system audit trail",
    method: "GET",
    path: `/v1/audit?all=${CANARY}`,
    ...invalid,
  },
  { title: "limit=0", method: "GET", path: `/v1/tenants/${TENANT}/secrets?limit=0`, ...invalid },
  { title: "limit=-1", method: "GET", path: `/v1/tenants/${TENANT}/secrets?limit=-1`, ...invalid },
  { title: "limit=1000", method: "GET", path: `/v1/tenants/${TENANT}/audit?limit=1000`, ...invalid },
  { title: "limit=abc", method: "GET", path: `/v1/audit?limit=abc`, ...invalid },
  { title: "limit=2.5", method: "GET", path: `/v1/tenants/${TENANT}/secrets?limit=2.5`, ...invalid },
  {
    title: "a cursor that is not base64 JSON",
    method: "GET",
    path: `/v1/tenants/${TENANT}/secrets?cursor=${CANARY}`,
    ...invalid,
  },
  { title: "an empty cursor", method: "GET", path: `/v1/tenants/${TENANT}/secrets?cursor=`, ...invalid },
  {
    title: "a cursor over 2048 characters",
    method: "GET",
    path: `/v1/tenants/${TENANT}/secrets?cursor=${"A".repeat(2049)}`,
    ...invalid,
  },
  {
    title: "a cursor for another tenant",
    method: "GET",
    path: `/v1/tenants/${TENANT}/secrets?cursor=${cursorOf({ pk: "T#other", sk: "S#a" })}`,
    ...invalid,
  },
  {
    title: "a cursor with extra keys",
    method: "GET",
    path: `/v1/tenants/${TENANT}/secrets?cursor=${cursorOf({ pk: `T#${TENANT}`, sk: "S#a", x: CANARY })}`,
    ...invalid,
  },
  {
    title: "a secrets cursor with an empty sort key",
    method: "GET",
    path: `/v1/tenants/${TENANT}/secrets?cursor=${cursorOf({ pk: `T#${TENANT}`, sk: "" })}`,
    ...invalid,
  },
  {
    title: "a secrets cursor outside the secrets' key range",
    method: "GET",
    path: `/v1/tenants/${TENANT}/secrets?cursor=${cursorOf({ pk: `T#${TENANT}`, sk: "TENANT" })}`,
    ...invalid,
  },
  {
    title: "a secrets cursor with a sort key over DynamoDB's 1024 bytes",
    method: "GET",
    path: `/v1/tenants/${TENANT}/secrets?cursor=${cursorOf({ pk: `T#${TENANT}`, sk: `S#${"k".repeat(1100)}` })}`,
    ...invalid,
  },
  {
    title: "an audit cursor with an empty sort key",
    method: "GET",
    path: `/v1/tenants/${TENANT}/audit?cursor=${cursorOf({ pk: `AUDIT#${TENANT}`, sk: "" })}`,
    ...invalid,
  },
  {
    title: "a verify cursor the service did not make (it would skip the walk to record 29)",
    method: "GET",
    path: `/v1/tenants/${TENANT}/audit/verify?cursor=${Buffer.from(JSON.stringify([JSON.stringify([29, "0".repeat(64), "2026-01-01", "local:x:2026-01-01"]), "0".repeat(64)])).toString("base64url")}`,
    ...invalid,
  },
  {
    title: "a verify cursor that is no cursor at all",
    method: "GET",
    path: `/v1/tenants/${TENANT}/audit/verify?cursor=not-a-cursor`,
    ...invalid,
  },
  // Token creation.
  {
    title: "an operator token for every tenant",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, role: "operator", tenants: ["*"] },
    ...invalid,
  },
  {
    title: "a runner token for no tenant",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, tenants: [] },
    ...invalid,
  },
  {
    title: "a runner token for '*' among tenants",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, tenants: [TENANT, "*"] },
    ...invalid,
  },
  {
    title: "ttlSeconds 0",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, ttlSeconds: 0 },
    ...invalid,
  },
  {
    title: "ttlSeconds 59",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, ttlSeconds: 59 },
    ...invalid,
  },
  {
    title: "ttlSeconds negative",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, ttlSeconds: -600 },
    ...invalid,
  },
  {
    title: "ttlSeconds over 366 days",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, ttlSeconds: 366 * 86_400 + 1 },
    ...invalid,
  },
  {
    title: "ttlSeconds huge",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, ttlSeconds: 1e308 },
    ...invalid,
  },
  {
    title: "ttlSeconds a float",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, ttlSeconds: 600.5 },
    ...invalid,
  },
  {
    title: "ttlSeconds a string",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, ttlSeconds: "600" },
    ...invalid,
  },
  {
    title: "missing ttlSeconds",
    method: "POST",
    path: "/v1/tokens",
    json: { role: "runner", tenants: [TENANT] },
    ...invalid,
  },
  {
    title: "an unknown role",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, role: `root${CANARY}` },
    ...invalid,
  },
  {
    title: "tenants as a string",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, tenants: TENANT },
    ...invalid,
  },
  {
    title: "an invalid tenant id in tenants",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, tenants: [`Bad_${CANARY}`] },
    ...invalid,
  },
  {
    title: "101 tenants",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, tenants: Array.from({ length: 101 }, (_, i) => `t-${i}`) },
    ...invalid,
  },
  {
    title: "an unknown field in the token body",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, extra: CANARY },
    ...invalid,
  },
  // Token revocation.
  { title: "a short token id to revoke", method: "DELETE", path: "/v1/tokens/abc", ...invalid },
  {
    title: "an uppercase token id to revoke",
    method: "DELETE",
    path: `/v1/tokens/${"A".repeat(26)}`,
    ...invalid,
  },
  {
    title: "a 27-character token id to revoke",
    method: "DELETE",
    path: `/v1/tokens/${"a".repeat(27)}`,
    ...invalid,
  },
  {
    title: "a whole bearer token as the id to revoke",
    method: "DELETE",
    path: `/v1/tokens/sbx_${"a".repeat(26)}_${"0".repeat(64)}`,
    ...invalid,
  },
  {
    title: "a well-formed token id that does not exist",
    method: "DELETE",
    path: `/v1/tokens/${"a".repeat(26)}`,
    status: 404,
    code: "not_found",
  },
  // IAM bindings.
  {
    title: "a binding for something that is not an ARN",
    method: "POST",
    path: "/v1/bindings",
    json: { ...validBinding, principalArn: CANARY },
    ...invalid,
  },
  {
    title: "a binding for an assumed-role session rather than its role",
    method: "POST",
    path: "/v1/bindings",
    json: { ...validBinding, principalArn: "arn:aws:sts::111111111111:assumed-role/reporting/session-1" },
    ...invalid,
  },
  {
    title: "a binding for an account's root",
    method: "POST",
    path: "/v1/bindings",
    json: { ...validBinding, principalArn: "arn:aws:iam::111111111111:root" },
    ...invalid,
  },
  {
    title: "a binding for a role ARN with an 11-digit account",
    method: "POST",
    path: "/v1/bindings",
    json: { ...validBinding, principalArn: "arn:aws:iam::11111111111:role/reporting" },
    ...invalid,
  },
  {
    title: "a binding for a role ARN with a wildcard name",
    method: "POST",
    path: "/v1/bindings",
    json: { ...validBinding, principalArn: "arn:aws:iam::111111111111:role/*" },
    ...invalid,
  },
  {
    title: "a binding ARN over 512 characters",
    method: "POST",
    path: "/v1/bindings",
    json: { ...validBinding, principalArn: `arn:aws:iam::111111111111:role/${"p/".repeat(250)}reporting` },
    ...invalid,
  },
  {
    title: "a binding with an unknown role",
    method: "POST",
    path: "/v1/bindings",
    json: { ...validBinding, role: "superuser" },
    ...invalid,
  },
  {
    title: "a runner binding for every tenant",
    method: "POST",
    path: "/v1/bindings",
    json: { ...validBinding, tenants: ["*"] },
    ...invalid,
  },
  {
    title: "a runner binding for '*' among tenants",
    method: "POST",
    path: "/v1/bindings",
    json: { ...validBinding, tenants: [TENANT, "*"] },
    ...invalid,
  },
  {
    title: "a runner binding for no tenant",
    method: "POST",
    path: "/v1/bindings",
    json: { ...validBinding, tenants: [] },
    ...invalid,
  },
  {
    title: "an admin binding scoped to a tenant",
    method: "POST",
    path: "/v1/bindings",
    json: { ...validBinding, role: "admin", tenants: [TENANT] },
    ...invalid,
  },
  {
    title: "an unknown field in the binding body",
    method: "POST",
    path: "/v1/bindings",
    json: { ...validBinding, extra: CANARY },
    ...invalid,
  },
  {
    title: "a binding for a tenant that does not exist",
    method: "POST",
    path: "/v1/bindings",
    json: { ...validBinding, tenants: [TENANT, "no-such-tenant"] },
    status: 404,
    code: "not_found",
  },
  {
    title: "a binding asked for by a runner",
    method: "POST",
    path: "/v1/bindings",
    json: validBinding,
    authorization: RUNNER,
    status: 403,
    code: "forbidden",
  },
  { title: "a malformed binding id to delete", method: "DELETE", path: "/v1/bindings/abc", ...invalid },
  {
    title: "a binding id with characters outside base32 to delete",
    method: "DELETE",
    path: `/v1/bindings/${"1".repeat(26)}`,
    ...invalid,
  },
  {
    title: "a well-formed binding id that does not exist",
    method: "DELETE",
    path: `/v1/bindings/${"a".repeat(26)}`,
    status: 404,
    code: "not_found",
  },
  { title: "a bindings listing with limit 0", method: "GET", path: "/v1/bindings?limit=0", ...invalid },
  { title: "a tenants listing with limit 0", method: "GET", path: "/v1/tenants?limit=0", ...invalid },
  {
    title: "a tenants listing with an unknown query field",
    method: "GET",
    path: "/v1/tenants?tenant=x",
    ...invalid,
  },
  {
    title: "a bindings listing with a cursor from a tenant's listing",
    method: "GET",
    path: `/v1/bindings?cursor=${cursorOf({ pk: `T#${TENANT}`, sk: "S#target" })}`,
    ...invalid,
  },
  // Rotation: staging labels and idempotency tokens on writes and reads.
  { title: "stage previous on a write", ...put(TARGET, { value: CANARY, stage: "previous" }), ...invalid },
  {
    title: "an unknown stage on a write",
    ...put(TARGET, { value: CANARY, stage: `x${CANARY}` }),
    ...invalid,
  },
  {
    title: "a clientRequestToken of 3 characters",
    ...put(TARGET, { value: CANARY, clientRequestToken: "abc" }),
    ...invalid,
  },
  {
    title: "a clientRequestToken with a space",
    ...put(TARGET, { value: CANARY, clientRequestToken: `${CANARY} x` }),
    ...invalid,
  },
  {
    title: "a clientRequestToken as a number",
    ...put(TARGET, { value: CANARY, clientRequestToken: 12345678 }),
    ...invalid,
  },
  {
    title: "a clientRequestToken of 65 characters",
    ...put(TARGET, { value: CANARY, clientRequestToken: "t".repeat(65) }),
    ...invalid,
  },
  { title: "an unknown stage on a read", ...read(`?stage=${CANARY}`), ...invalid },
  { title: "both stage and version on a read", ...read("?stage=current&version=1"), ...invalid },
  // Rotation policy.
  { title: "rotationPeriodDays 0", ...put(`${TARGET}/rotation`, { rotationPeriodDays: 0 }), ...invalid },
  {
    title: "rotationPeriodDays negative",
    ...put(`${TARGET}/rotation`, { rotationPeriodDays: -30 }),
    ...invalid,
  },
  {
    title: "rotationPeriodDays a float",
    ...put(`${TARGET}/rotation`, { rotationPeriodDays: 1.5 }),
    ...invalid,
  },
  {
    title: "rotationPeriodDays over ten years",
    ...put(`${TARGET}/rotation`, { rotationPeriodDays: 3651 }),
    ...invalid,
  },
  {
    title: "rotationPeriodDays a string",
    ...put(`${TARGET}/rotation`, { rotationPeriodDays: "30" }),
    ...invalid,
  },
  { title: "an empty rotation policy", ...put(`${TARGET}/rotation`, {}), ...invalid },
  {
    title: "an unknown field in the rotation policy",
    ...put(`${TARGET}/rotation`, { rotationPeriodDays: 30, extra: CANARY }),
    ...invalid,
  },
  {
    title: "a generator shorter than 16 characters",
    ...put(`${TARGET}/rotation`, { generator: { kind: "password", length: 8 } }),
    ...invalid,
  },
  {
    title: "an unknown generator kind",
    ...put(`${TARGET}/rotation`, { generator: { kind: CANARY, length: 32 } }),
    ...invalid,
  },
  {
    title: "a generator alphabet of one character",
    ...put(`${TARGET}/rotation`, { generator: { kind: "token", length: 32, alphabet: "aaaa" } }),
    ...invalid,
  },
  {
    title: "a generator of under 128 bits (16 alphanumerics: 95 bits)",
    ...put(`${TARGET}/rotation`, { generator: { kind: "token", length: 16 } }),
    ...invalid,
  },
  {
    title: "a generator of under 128 bits (100 characters of a two-letter alphabet)",
    ...put(`${TARGET}/rotation`, { generator: { kind: "token", length: 100, alphabet: "ab" } }),
    ...invalid,
  },
  {
    title: "a generator alphabet with a space",
    ...put(`${TARGET}/rotation`, { generator: { kind: "token", length: 32, alphabet: `ab ${CANARY}` } }),
    ...invalid,
  },
  {
    title: "a rotation policy on a secret that does not exist",
    ...put(`/v1/tenants/${TENANT}/secrets/no-such-secret/rotation`, { rotationPeriodDays: 30 }),
    status: 404,
    code: "not_found",
  },
  // Rotation steps.
  {
    title: "a rotate with a malformed clientRequestToken",
    method: "POST",
    path: `${TARGET}/rotate`,
    json: { clientRequestToken: `bad token ${CANARY}` },
    ...invalid,
  },
  {
    title: "an unknown field in a rotate",
    method: "POST",
    path: `${TARGET}/rotate`,
    json: { extra: CANARY },
    ...invalid,
  },
  {
    title: "a promote of version 0",
    method: "POST",
    path: `${TARGET}/promote`,
    json: { version: 0 },
    ...invalid,
  },
  {
    title: "a promote of version as a string",
    method: "POST",
    path: `${TARGET}/promote`,
    json: { version: "2" },
    ...invalid,
  },
  {
    title: "a promote without a pending version",
    method: "POST",
    path: `${TARGET}/promote`,
    json: {},
    status: 409,
    code: "conflict",
  },
  {
    title: "a rollback of a secret that does not exist",
    method: "POST",
    path: `/v1/tenants/${TENANT}/secrets/no-such-secret/rollback`,
    json: { version: 1 },
    status: 404,
    code: "not_found",
  },
  {
    title: "a DEK rotation of a tenant that does not exist",
    method: "POST",
    path: "/v1/tenants/no-such-tenant/rotate-dek",
    status: 404,
    code: "not_found",
  },
  {
    title: "a DEK rotation of an uppercase tenant id",
    method: "POST",
    path: "/v1/tenants/ACME/rotate-dek",
    ...invalid,
  },
  // The due listing.
  {
    title: "withinDays negative",
    method: "GET",
    path: `/v1/tenants/${TENANT}/rotation/due?withinDays=-1`,
    ...invalid,
  },
  {
    title: "withinDays too large",
    method: "GET",
    path: `/v1/tenants/${TENANT}/rotation/due?withinDays=10000`,
    ...invalid,
  },
  {
    title: "an unknown query parameter on the due listing",
    method: "GET",
    path: `/v1/tenants/${TENANT}/rotation/due?sort=${CANARY}`,
    ...invalid,
  },
  {
    title: "a due-listing cursor for another tenant",
    method: "GET",
    path: `/v1/tenants/${TENANT}/rotation/due?cursor=${cursorOf({ pk: "T#other", sk: "S#a" })}`,
    ...invalid,
  },
  // Version lifecycle (issue 12 item 5): maxVersions, the versions listing, destroy, undelete, purge.
  { title: "maxVersions zero", ...put(TARGET, { value: CANARY, maxVersions: 0 }), ...invalid },
  { title: "maxVersions as a string", ...put(TARGET, { value: CANARY, maxVersions: "2" }), ...invalid },
  { title: "maxVersions over 100", ...put(TARGET, { value: CANARY, maxVersions: 101 }), ...invalid },
  {
    title: "an unknown query parameter on the versions listing",
    method: "GET",
    path: `${TARGET}/versions?value=${CANARY}`,
    ...invalid,
  },
  {
    title: "destroy of a version that is not a number",
    method: "DELETE",
    path: `${TARGET}/versions/${CANARY}`,
    ...invalid,
  },
  { title: "destroy of version 0", method: "DELETE", path: `${TARGET}/versions/0`, ...invalid },
  {
    title: "destroy of the current version",
    method: "DELETE",
    path: `${TARGET}/versions/2`,
    status: 409,
    code: "conflict",
  },
  {
    title: "destroy of a version never written",
    method: "DELETE",
    path: `${TARGET}/versions/99`,
    status: 404,
    code: "not_found",
  },
  {
    title: "undelete of a live secret",
    method: "POST",
    path: `${TARGET}/undelete`,
    status: 409,
    code: "conflict",
  },
  {
    title: "undelete of a secret that does not exist",
    method: "POST",
    path: `/v1/tenants/${TENANT}/secrets/absent/undelete`,
    status: 404,
    code: "not_found",
  },
  {
    title: "purge of a secret that does not exist",
    method: "POST",
    path: `/v1/tenants/${TENANT}/secrets/absent/purge`,
    status: 404,
    code: "not_found",
  },
  // Tenant deletion (issue 12 item 6): the confirm must repeat the path's tenant.
  {
    title: "a tenant deletion whose confirm names another tenant",
    method: "DELETE",
    path: `/v1/tenants/${TENANT}`,
    json: { confirm: CANARY },
    ...invalid,
  },
  {
    title: "a tenant deletion without confirm",
    method: "DELETE",
    path: `/v1/tenants/${TENANT}`,
    json: {},
    ...invalid,
  },
  {
    title: "a tenant deletion with confirm as a number",
    method: "DELETE",
    path: `/v1/tenants/${TENANT}`,
    json: { confirm: 1 },
    ...invalid,
  },
  {
    title: "a tenant deletion without a body",
    method: "DELETE",
    path: `/v1/tenants/${TENANT}`,
    contentType: null,
    status: 415,
    code: "unsupported_media_type",
  },
  {
    title: "a deletion of a tenant that does not exist",
    method: "DELETE",
    path: "/v1/tenants/absent",
    json: { confirm: "absent" },
    status: 404,
    code: "not_found",
  },
  {
    title: "the deletion certificate of a tenant that was not deleted",
    method: "GET",
    path: `/v1/tenants/${TENANT}/deletion-certificate`,
    status: 404,
    code: "not_found",
  },
  // CredentialRefs (issue 12 item 4): refused before anything is recorded or asked of AWS.
  {
    title: "a reference with an unsupported scheme",
    ...put(TARGET, { ref: "vault://kv/clients/x" }),
    ...invalid,
  },
  {
    title: "a reference with a malformed ARN",
    ...put(TARGET, { ref: "aws-sm://arn:aws:secretsmanager:us-east-1:1:secret:x" }),
    ...invalid,
  },
  {
    title: "a reference and a value together",
    ...put(TARGET, { ref: "aws-sm://x", value: CANARY }),
    ...invalid,
  },
  { title: "neither a reference nor a value", ...put(TARGET, { cas: 2 }), ...invalid },
  { title: "a reference as a number", ...put(TARGET, { ref: 7 }), ...invalid },
  // Verification hooks (issue 12 item 7).
  {
    title: "a verifier over plain http",
    ...put(`${TARGET}/rotation`, { verifier: { url: `http://127.0.0.1/${CANARY}` } }),
    ...invalid,
  },
  {
    title: "a verifier Lambda ARN that is not a function",
    ...put(`${TARGET}/rotation`, { verifier: { lambdaArn: "arn:aws:s3:::bucket" } }),
    ...invalid,
  },
  {
    title: "a verifier with both url and lambdaArn",
    ...put(`${TARGET}/rotation`, { verifier: { url: "https://x", lambdaArn: "y" } }),
    ...invalid,
  },
  // Routes that do not exist, and methods a route does not take.
  { title: "an unknown route", method: "GET", path: `/v1/${CANARY}`, status: 404, code: "not_found" },
  {
    title: "an unknown method on a secret",
    method: "PATCH",
    path: TARGET,
    json: { value: CANARY },
    status: 405,
    code: "method_not_allowed",
  },
  {
    title: "a path past a secret",
    ...put(`${TARGET}/extra`, { value: CANARY }),
    status: 404,
    code: "not_found",
  },
  {
    title: "POST on a tenant",
    method: "POST",
    path: `/v1/tenants/${TENANT}`,
    json: { tenantId: TENANT },
    status: 405,
    code: "method_not_allowed",
  }, // The kill switch: bodies outside the schema, and a sealed tenant, which answers 423 and nothing else.
  { title: "a seal without a body", method: "POST", path: SEAL, body: "", ...invalid },
  { title: "a seal without a reason", method: "POST", path: SEAL, json: {}, ...invalid },
  { title: "a seal with an empty reason", method: "POST", path: SEAL, json: { reason: "  " }, ...invalid },
  { title: "a seal reason as a number", method: "POST", path: SEAL, json: { reason: 7 }, ...invalid },
  {
    title: "a seal reason with a control character",
    method: "POST",
    path: SEAL,
    json: { reason: `why\u0000${CANARY}` },
    ...invalid,
  },
  {
    title: "a seal reason of 257 characters",
    method: "POST",
    path: SEAL,
    json: { reason: `${CANARY}${"r".repeat(257 - CANARY.length)}` },
    ...invalid,
  },
  {
    title: "an unknown field in a seal body",
    method: "POST",
    path: SEAL,
    json: { reason: "x", [CANARY]: true },
    ...invalid,
  },
  {
    title: "sealing a tenant that does not exist",
    method: "POST",
    path: "/v1/tenants/no-such-tenant/seal",
    json: { reason: "x" },
    status: 404,
    code: "not_found",
  },
  {
    title: "an invalid tenant id to seal",
    method: "POST",
    path: `/v1/tenants/${CANARY}_x/seal`,
    json: { reason: "x" },
    ...invalid,
  },
  {
    title: "an unseal without a reason",
    method: "POST",
    path: `/v1/tenants/${TENANT}/unseal`,
    json: {},
    ...invalid,
  },
  {
    title: "a global seal with an unknown field",
    method: "POST",
    path: "/v1/seal",
    json: { reason: "x", on: 1 },
    ...invalid,
  },
  {
    title: "a global unseal as text",
    method: "POST",
    path: "/v1/unseal",
    body: "reason",
    contentType: "text/plain",
    status: 415,
    code: "unsupported_media_type",
  },
  { title: "a GET of the seal route", method: "GET", path: SEAL, status: 405, code: "method_not_allowed" },
  {
    title: "a read of a sealed tenant",
    method: "GET",
    path: `/v1/tenants/${SEALED}/secrets/db`,
    headers: REASON,
    status: 423,
    code: "tenant_sealed",
  },
  {
    title: "a write to a sealed tenant",
    ...put(`/v1/tenants/${SEALED}/secrets/db`, { value: CANARY }),
    status: 423,
    code: "tenant_sealed",
  },
  // Response wrapping.
  { title: "an unwrap without a body", method: "POST", path: "/v1/unwrap", body: "", ...invalid },
  { title: "an unwrap without a token", method: "POST", path: "/v1/unwrap", json: {}, ...invalid },
  {
    title: "an unwrap of a bearer token",
    method: "POST",
    path: "/v1/unwrap",
    json: { token: `sbx_${CANARY}` },
    ...invalid,
  },
  {
    title: "an unwrap with an unknown field",
    method: "POST",
    path: "/v1/unwrap",
    json: { token: `sbw_${"a".repeat(26)}_${"0".repeat(64)}`, [CANARY]: 1 },
    ...invalid,
  },
  {
    title: "an unwrap of an unknown wrapping token",
    method: "POST",
    path: "/v1/unwrap",
    json: { token: `sbw_${"b".repeat(26)}_${"1".repeat(64)}` },
    status: 404,
    code: "not_found",
  },
  {
    title: "a lookup of an unknown wrapping token without any bearer token",
    method: "POST",
    path: "/v1/unwrap/lookup",
    json: { token: `sbw_${"c".repeat(26)}_${"2".repeat(64)}` },
    authorization: null,
    status: 404,
    code: "not_found",
  },
  {
    title: "a lookup as a number",
    method: "POST",
    path: "/v1/unwrap/lookup",
    json: { token: 7 },
    ...invalid,
  },
  { title: "wrapTtlSeconds=0 on a read", ...read("?wrapTtlSeconds=0"), ...invalid },
  { title: "wrapTtlSeconds past a day on a read", ...read("?wrapTtlSeconds=86401"), ...invalid },
  {
    title: "wrapTtlSeconds as a string on a token",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, wrapTtlSeconds: "60" },
    ...invalid,
  },
  {
    title: "wrapTtlSeconds past a day on a token",
    method: "POST",
    path: "/v1/tokens",
    json: { ...validToken, wrapTtlSeconds: 86_401 },
    ...invalid,
  },
  // Break-glass requests.
  {
    title: "a break-glass of 61 minutes",
    method: "POST",
    path: `/v1/tenants/${TENANT}/break-glass`,
    json: { reason: "x", durationMinutes: 61 },
    ...invalid,
  },
  {
    title: "a break-glass of 0 minutes",
    method: "POST",
    path: `/v1/tenants/${TENANT}/break-glass`,
    json: { reason: "x", durationMinutes: 0 },
    ...invalid,
  },
  {
    title: "a break-glass of 1.5 minutes",
    method: "POST",
    path: `/v1/tenants/${TENANT}/break-glass`,
    json: { reason: "x", durationMinutes: 1.5 },
    ...invalid,
  },
  {
    title: "a break-glass without a reason",
    method: "POST",
    path: `/v1/tenants/${TENANT}/break-glass`,
    json: { durationMinutes: 5 },
    ...invalid,
  },
  {
    title: "a break-glass with an unknown field",
    method: "POST",
    path: `/v1/tenants/${TENANT}/break-glass`,
    json: { reason: "x", durationMinutes: 5, role: CANARY },
    ...invalid,
  },
  {
    title: "a malformed break-glass id",
    method: "POST",
    path: `/v1/tenants/${TENANT}/break-glass/${CANARY}/approve`,
    ...invalid,
  },
  {
    title: "an unknown break-glass id",
    method: "POST",
    path: `/v1/tenants/${TENANT}/break-glass/${"a".repeat(26)}/approve`,
    status: 404,
    code: "not_found",
  },
  // The access review's filters.
  {
    title: "a token listing by an unknown role",
    method: "GET",
    path: `/v1/tokens?role=${CANARY}`,
    ...invalid,
  },
  {
    title: "a token listing by a malformed tenant",
    method: "GET",
    path: "/v1/tokens?tenant=A_B",
    ...invalid,
  },
  {
    title: "a token listing with a non-ISO expiresBefore",
    method: "GET",
    path: `/v1/tokens?expiresBefore=${CANARY}`,
    ...invalid,
  },
  {
    title: "a token listing by an unknown status",
    method: "GET",
    path: "/v1/tokens?status=lost",
    ...invalid,
  },
  { title: "a token listing with limit 0", method: "GET", path: "/v1/tokens?limit=0", ...invalid },
  { title: "an unknown token listing parameter", method: "GET", path: `/v1/tokens?${CANARY}=1`, ...invalid },
  {
    title: "a token listing cursor from another partition",
    method: "GET",
    path: `/v1/tokens?cursor=${cursorOf({ pk: "TOKEN#x", sk: "TOKEN" })}`,
    ...invalid,
  },
  {
    title: "a listing of a sealed tenant",
    method: "GET",
    path: `/v1/tenants/${SEALED}/secrets`,
    status: 423,
    code: "tenant_sealed",
  },
];

async function send(c: BadCase): Promise<ApiResponse> {
  const raw = c.body ?? (c.json === undefined ? undefined : JSON.stringify(c.json));
  const contentType = c.contentType === undefined ? "application/json" : c.contentType;
  const authorization =
    c.authorization === undefined
      ? `Bearer ${admin}`
      : c.authorization === RUNNER
        ? `Bearer ${runner}`
        : c.authorization;
  const headers: Record<string, string> = {
    ...(raw !== undefined && contentType !== null ? { "content-type": contentType } : {}),
    ...(authorization === null ? {} : { authorization }),
    ...c.headers,
  };
  return readResponse(
    await h.app.request(c.path, { method: c.method, headers, ...(raw === undefined ? {} : { body: raw }) }),
  );
}

async function expectTarget(version: number, value: string) {
  const response = await h.call("GET", TARGET, { token: admin, headers: REASON });
  expect(response.status).toBe(200);
  expect(await response.json()).toMatchObject({ name: "target", version, value });
}

beforeAll(async () => {
  h = await startHarness();
  admin = await h.token("admin");
  const issued = await h.runtime.tokens.issue("runner", [TENANT], 3600);
  runnerTokenId = issued.id;
  runner = issued.token;
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } })).status).toBe(
    201,
  );
  for (const value of ["original-v1", TARGET_VALUE]) {
    expect((await h.call("PUT", TARGET, { token: admin, body: { value } })).status).toBe(200);
  }
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: SEALED } })).status).toBe(
    201,
  );
  const sealedPut = await h.call("PUT", `/v1/tenants/${SEALED}/secrets/db`, {
    token: admin,
    body: { value: "kept" },
  });
  expect(sealedPut.status).toBe(200);
  const sealed = await h.call("POST", `/v1/tenants/${SEALED}/seal`, {
    token: admin,
    body: { reason: "bad input" },
  });
  expect(sealed.status).toBe(200);
});
afterAll(() => h?.close());

describe("bad input is refused with a 4xx JSON error that echoes nothing", () => {
  it("the table holds at least 30 distinct cases, and the multibyte case is over in bytes only", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
    expect(new Set(CASES.map((c) => c.title)).size).toBe(CASES.length);
    expect(utf8.encode(multibyteValue).byteLength).toBe(65_539);
    expect(multibyteValue.length).toBeLessThan(65_536);
  });

  for (const c of CASES) {
    it(`${c.title}: ${c.status} ${c.code}`, async () => {
      const response = await send(c);
      // Checked before the exact status so a server error reads as such in the failure.
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(response.status).toBe(c.status);
      expect(response.headers.get("content-type")).toMatch(/^application\/json/);
      const body = JSON.parse(response.text);
      expect(Object.keys(body)).toEqual(["error"]);
      expect(Object.keys(body.error).sort()).toEqual(["code", "message"]);
      expect(body.error.code).toBe(c.code);
      expect(typeof body.error.message).toBe("string");
      expect(body.error.message.length).toBeGreaterThan(0);
      expect(response.text).not.toContain(CANARY);
      if (c.path === TARGET && c.method === "PUT") await expectTarget(2, TARGET_VALUE);
    });
  }
});

describe("bad input leaves no trace in the data", () => {
  it("the targeted secret still holds its version 2 value and no third version was archived or committed", async () => {
    await expectTarget(2, TARGET_VALUE);
    const v1 = await h.call("GET", `${TARGET}?version=1`, { token: admin, headers: REASON });
    expect(await v1.json()).toMatchObject({ version: 1, value: "original-v1" });
    const head = await new SecretRepository(h.table).getHead(TENANT, "target");
    expect(head?.current.version).toBe(2);
    expect(await new SecretRepository(h.table).getArchivedVersion(TENANT, "target", 3)).toBeUndefined();
  });

  it("no bad write created a secret or a tenant", async () => {
    const list = await (await h.call("GET", `/v1/tenants/${TENANT}/secrets`, { token: admin })).json();
    expect(list.secrets.map((s: { name: string }) => s.name)).toEqual(["target"]);
    expect((await h.call("GET", "/v1/tenants/fresh", { token: admin })).status).toBe(404);
  });

  it("refused binding requests bound nobody", async () => {
    const events = (await (await h.call("GET", "/v1/audit?limit=999", { token: admin })).json()).events;
    const created = events.filter((e: { action: string; outcome: string }) => e.action === "binding.create");
    expect(created.filter((e: { outcome: string }) => e.outcome === "success")).toEqual([]);
    const listed = await (await h.call("GET", "/v1/bindings", { token: admin })).json();
    expect(listed).toEqual({ bindings: [] });
  });

  it("refused token requests issued no token and revoked none", async () => {
    const events = (await (await h.call("GET", "/v1/audit?limit=999", { token: admin })).json()).events;
    expect(events.filter((e: { action: string }) => e.action === "token.create")).toEqual([]);
    expect(await h.runtime.tokens.isActive(runnerTokenId)).toBe(true);
  });

  it("the only successful writes of the target in the audit trail are the two set-up writes", async () => {
    const events = (
      await (await h.call("GET", `/v1/tenants/${TENANT}/audit?limit=999`, { token: admin })).json()
    ).events;
    const writes = events.filter(
      (e: { action: string; secretName?: string }) =>
        e.action === "secret.write" && e.secretName === "target",
    );
    // Each set-up write is an attempt followed by its success. Of the bad inputs only the cas conflict
    // passes validation, so it alone is on record, as an attempt that failed.
    const outcomes = writes.map(
      (e: { version?: number; outcome: string }) => `${e.outcome}:${e.version ?? "-"}`,
    );
    expect(outcomes.sort()).toEqual([
      "attempt:-",
      "attempt:-",
      "attempt:-",
      "failure:-",
      "success:1",
      "success:2",
    ]);
    expect(JSON.stringify(events)).not.toContain(CANARY);
  });
});

describe("the limits themselves are accepted", () => {
  // Controls for the cases above: the same inputs one step inside each limit do succeed.
  it("a value of exactly 64 KiB of multibyte UTF-8 is written and read back intact", async () => {
    const value = "é".repeat(32_768);
    const path = `/v1/tenants/${TENANT}/secrets/limit-value`;
    expect((await h.call("PUT", path, { token: admin, body: { value } })).status).toBe(200);
    const got = await h.call("GET", path, { token: admin, headers: REASON });
    expect((await got.json()).value).toBe(value);
    await h.call("DELETE", path, { token: admin });
  });

  it("a secret name of 128 characters and a reason of 256 characters are accepted", async () => {
    const path = `/v1/tenants/${TENANT}/secrets/${"n".repeat(128)}`;
    expect((await h.call("PUT", path, { token: admin, body: { value: "x" } })).status).toBe(200);
    const got = await h.call("GET", path, { token: admin, headers: { "x-audit-reason": "r".repeat(256) } });
    expect(got.status).toBe(200);
    await h.call("DELETE", path, { token: admin });
  });
});
