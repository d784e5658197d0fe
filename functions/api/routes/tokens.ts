import { Hono } from "hono";
import * as z from "zod";
import { createTokenSchema, tokenIdSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody, pageBody, pageOf, parseWith, queryWith } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { tokenIssuedBody, tokenMetadataBody, tokensPageBody, wrappedBody } from "../openapi/bodies.ts";
import { BOUNDED, JSON_BODY } from "../openapi/error-codes.ts";
import { documented } from "../openapi/route-doc.ts";
import { tokenListQuerySchema } from "../schemas.ts";

export function tokenRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

  app.post(
    "/v1/tokens",
    documented({
      operationId: "createToken",
      summary: "Issue a token; it is shown once",
      description:
        'An admin token is global (`tenants: ["*"]`); any other role names tenants, each of which must exist. With `wrapTtlSeconds` the answer is a single-use wrapping token for it instead (`POST /v1/unwrap`).',
      tag: "tokens",
      operation: "token.create",
      body: createTokenSchema,
      responses: {
        201: {
          description: "the token, or its wrapping token",
          schema: z.union([tokenIssuedBody, wrappedBody]),
        },
      },
      errors: [...JSON_BODY, "not_found"],
    }),
    authenticated("token.create"),
    async (c) => {
      const input = await jsonBody(c, createTokenSchema);
      return c.json(await runtime.tokens.create(c.var.ctx, input), 201);
    },
  );

  app.delete(
    "/v1/tokens/:id",
    documented({
      operationId: "revokeToken",
      summary: "Revoke a token; it stops working at once",
      tag: "tokens",
      operation: "token.revoke",
      path: z.strictObject({ id: tokenIdSchema }),
      responses: { 204: { description: "revoked" } },
      errors: ["not_found"],
    }),
    authenticated("token.revoke"),
    async (c) => {
      await runtime.tokens.revoke(c.var.ctx, parseWith(tokenIdSchema, c.req.param("id"), "id"));
      return c.body(null, 204);
    },
  );

  // The access review (seed 002 §10.2): metadata only, never a hash.
  app.get(
    "/v1/tokens",
    documented({
      operationId: "listTokens",
      summary: "The access review: a page of tokens' metadata, never a hash",
      description:
        "Filters apply to each page read, so a page may hold fewer than `limit` tokens while `nextCursor` is present. A token whose item fails its integrity check shows its id and `failed_integrity` only.",
      tag: "tokens",
      operation: "token.list",
      query: tokenListQuerySchema,
      responses: { 200: { description: "one page", schema: tokensPageBody } },
      errors: BOUNDED,
    }),
    authenticated("token.list"),
    async (c) => {
      const { limit, cursor, ...filter } = queryWith(c, tokenListQuerySchema);
      const page = await runtime.tokens.list(c.var.ctx, filter, pageOf({ limit }).limit, cursor);
      return c.json(pageBody("tokens", page));
    },
  );

  app.get(
    "/v1/tokens/self",
    documented({
      operationId: "getTokenSelf",
      summary: "The caller's own token, as the access review shows it",
      tag: "tokens",
      operation: "token.self",
      responses: { 200: { description: "the caller's token", schema: tokenMetadataBody } },
      errors: ["not_found"],
    }),
    authenticated("token.self"),
    async (c) => c.json(await runtime.tokens.self(c.var.ctx)),
  );

  return app;
}
