import { Hono } from "hono";
import { deadlineIn } from "../../../shared/domain/work.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, ON_DEMAND_BUDGET_MS } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { tenantScope } from "../middleware/tenant-scope.ts";

/** The keys under the secrets: a tenant's DEK rotation and its status, the KEK report and rewrap. */
export function keyRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.tokens);

  app.post(
    "/v1/tenants/:tenantId/rotate-dek",
    authenticated("tenant.rotate-dek"),
    tenantScope(),
    async (c) => {
      return c.json(await runtime.dekRotation.rotateDek(c.var.ctx, c.var.tenantId));
    },
  );

  app.get("/v1/tenants/:tenantId/rotation", authenticated("rotation.read"), tenantScope(), async (c) => {
    return c.json(await runtime.dekRotation.status(c.var.ctx, c.var.tenantId));
  });

  app.get("/v1/kek", authenticated("kek.read"), async (c) => {
    return c.json(await runtime.kekReport.report(c.var.ctx));
  });

  app.post("/v1/kek/rewrap", authenticated("kek.rewrap"), async (c) => {
    const run = await runtime.kekRewrap.startRewrap(
      c.var.ctx,
      c.var.requestId,
      deadlineIn(ON_DEMAND_BUDGET_MS),
    );
    return c.json(run);
  });

  return app;
}
