import { Hono } from "hono";
import { createTokenSchema, tokenIdSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody, parseWith } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";

export function tokenRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

  app.post("/v1/tokens", authenticated("token.create"), async (c) => {
    const input = await jsonBody(c, createTokenSchema);
    return c.json(await runtime.tokens.create(c.var.ctx, input), 201);
  });

  app.delete("/v1/tokens/:id", authenticated("token.revoke"), async (c) => {
    await runtime.tokens.revoke(c.var.ctx, parseWith(tokenIdSchema, c.req.param("id"), "id"));
    return c.body(null, 204);
  });

  return app;
}
