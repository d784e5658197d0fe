import { Hono } from "hono";
import * as z from "zod";
import { createTokenSchema, tokenIdSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody, parseWith } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { tokenIssuedBody } from "../openapi/bodies.ts";
import { JSON_BODY } from "../openapi/error-codes.ts";
import { documented } from "../openapi/route-doc.ts";

export function tokenRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

  app.post(
    "/v1/tokens",
    documented({
      operationId: "createToken",
      summary: "Issue a token; it is shown once",
      description:
        'An admin token is global (`tenants: ["*"]`); any other role names tenants, each of which must exist.',
      tag: "tokens",
      operation: "token.create",
      body: createTokenSchema,
      responses: { 201: { description: "the token", schema: tokenIssuedBody } },
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

  return app;
}
