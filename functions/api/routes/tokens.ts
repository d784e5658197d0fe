import { Hono } from "hono";
import { createTokenSchema, tokenIdSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody, pageBody, pageOf, parseWith, queryWith } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { tokenListQuerySchema } from "../schemas.ts";

export function tokenRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.tokens);

  app.post("/v1/tokens", authenticated("token.create"), async (c) => {
    const input = await jsonBody(c, createTokenSchema);
    return c.json(await runtime.tokens.create(c.var.ctx, input), 201);
  });

  app.delete("/v1/tokens/:id", authenticated("token.revoke"), async (c) => {
    await runtime.tokens.revoke(c.var.ctx, parseWith(tokenIdSchema, c.req.param("id"), "id"));
    return c.body(null, 204);
  });

  // The access review (seed 002 §10.2): metadata only, never a hash.
  app.get("/v1/tokens", authenticated("token.list"), async (c) => {
    const { limit, cursor, ...filter } = queryWith(c, tokenListQuerySchema);
    const page = await runtime.tokens.list(c.var.ctx, filter, pageOf({ limit }).limit, cursor);
    return c.json(pageBody("tokens", page));
  });

  app.get("/v1/tokens/self", authenticated("token.self"), async (c) => {
    return c.json(await runtime.tokens.self(c.var.ctx));
  });

  return app;
}
