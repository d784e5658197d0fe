import { Hono } from "hono";
import { bindingIdSchema, createBindingSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody, pageBody, pageOf, parseWith, queryWith } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { pageQuerySchema } from "../schemas.ts";

/** IAM principals' bindings to a role and tenants: admin only (docs/api.md#bindings). */
export function bindingRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

  app.post("/v1/bindings", authenticated("binding.create"), async (c) => {
    const input = await jsonBody(c, createBindingSchema);
    return c.json(await runtime.bindings.create(c.var.ctx, input), 201);
  });

  app.get("/v1/bindings", authenticated("binding.list"), async (c) => {
    const { limit, cursor } = pageOf(queryWith(c, pageQuerySchema));
    return c.json(pageBody("bindings", await runtime.bindings.list(c.var.ctx, limit, cursor)));
  });

  app.delete("/v1/bindings/:id", authenticated("binding.delete"), async (c) => {
    await runtime.bindings.delete(c.var.ctx, parseWith(bindingIdSchema, c.req.param("id"), "id"));
    return c.body(null, 204);
  });

  return app;
}
