import { Hono } from "hono";
import { unwrapSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody } from "../http.ts";
import { unwrappedBody, wrapInfoBody } from "../openapi/bodies.ts";
import { type ErrorCode, JSON_BODY, WRAPPING_TOKEN } from "../openapi/error-codes.ts";
import { documented } from "../openapi/route-doc.ts";

/** What either route answers besides the wrapping token's own refusals: the payload's seal, the record's dependencies. */
const WRAP_ROUTE: readonly ErrorCode[] = [
  ...JSON_BODY,
  ...WRAPPING_TOKEN,
  "tenant_sealed",
  "audit_record_too_large",
  "keyring_unavailable",
  "store_unavailable",
  "audit_unavailable",
];

/**
 * Response wrapping (seed 002 §3.1). These take no bearer token: the wrapping token in the body is
 * the credential, as in Vault, so a recipient without a Strongbox token yet can unwrap its first one.
 */
export function wrappingRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post(
    "/v1/unwrap",
    documented({
      operationId: "unwrap",
      summary: "Hand out a wrapped response's payload, exactly once",
      description:
        "The wrapping token (`sbw_…`) in the body is the only credential. `data` is what the wrapped response would have carried. 410 once it was unwrapped (if not by you, treat the payload as intercepted) or has expired.",
      tag: "wrapping",
      body: unwrapSchema,
      responses: { 200: { description: "the payload", schema: unwrappedBody } },
      errors: [...WRAP_ROUTE, "decrypt_failed", "kek_mismatch"],
    }),
    async (c) => {
      const { token } = await jsonBody(c, unwrapSchema);
      const { kind, payload } = await runtime.wrapping.unwrap(token, c.var.requestId);
      // The payload is the JSON the wrapped response would have carried.
      return c.json({ kind, data: JSON.parse(payload) as unknown });
    },
  );

  app.post(
    "/v1/unwrap/lookup",
    documented({
      operationId: "lookupWrap",
      summary: "Who wrapped a response, and until when, without using it",
      tag: "wrapping",
      body: unwrapSchema,
      responses: { 200: { description: "the wrapping token's metadata", schema: wrapInfoBody } },
      errors: WRAP_ROUTE,
    }),
    async (c) => {
      const { token } = await jsonBody(c, unwrapSchema);
      return c.json(await runtime.wrapping.lookup(token, c.var.requestId));
    },
  );

  return app;
}
