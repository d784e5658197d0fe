import { Hono } from "hono";
import { createTenantSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { tenantScope } from "../middleware/tenant-scope.ts";

export function tenantRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

  app.post("/v1/tenants", authenticated("tenant.create"), async (c) => {
    const { tenantId } = await jsonBody(c, createTenantSchema);
    return c.json(await runtime.tenants.create(c.var.ctx, tenantId), 201);
  });

  app.get("/v1/tenants/:tenantId", authenticated("tenant.read"), tenantScope(), async (c) => {
    return c.json(await runtime.tenants.get(c.var.ctx, c.var.tenantId));
  });

  return app;
}
