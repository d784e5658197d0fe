import { Hono } from "hono";
import { sealSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { tenantScope } from "../middleware/tenant-scope.ts";

/**
 * The kill switch (seed 002 §7.1): seal one tenant or every tenant, and unseal. An unseal that waits
 * for a second admin answers 202 with the request on record; the call that completes it answers 200.
 */
export function sealRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.tokens);

  app.post("/v1/tenants/:tenantId/seal", authenticated("tenant.seal"), tenantScope(), async (c) => {
    const { reason } = await jsonBody(c, sealSchema);
    return c.json(await runtime.seals.seal(c.var.ctx, c.var.tenantId, reason));
  });

  app.post("/v1/tenants/:tenantId/unseal", authenticated("tenant.unseal"), tenantScope(), async (c) => {
    const { reason } = await jsonBody(c, sealSchema);
    const { view, done } = await runtime.seals.unseal(c.var.ctx, c.var.tenantId, reason);
    return c.json(view, done ? 200 : 202);
  });

  app.post("/v1/seal", authenticated("system.seal"), async (c) => {
    const { reason } = await jsonBody(c, sealSchema);
    return c.json(await runtime.seals.sealAll(c.var.ctx, reason));
  });

  app.post("/v1/unseal", authenticated("system.unseal"), async (c) => {
    const { reason } = await jsonBody(c, sealSchema);
    const { view, done } = await runtime.seals.unsealAll(c.var.ctx, reason);
    return c.json(view, done ? 200 : 202);
  });

  return app;
}
