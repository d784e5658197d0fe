import { Hono } from "hono";
import type { Runtime } from "../../../shared/runtime/container.ts";
import type { AppEnv } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { tenantScope } from "../middleware/tenant-scope.ts";

/** The keys under the secrets: a tenant's DEK rotation and its status, the KEK report and rewrap. */
export function keyRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

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

  // 202: the re-wrap is handed to the rotation function (locally, a background worker); GET /v1/kek
  // shows its progress.
  app.post("/v1/kek/rewrap", authenticated("kek.rewrap"), async (c) => {
    return c.json(await runtime.rewrapRequests.request(c.var.ctx), 202);
  });

  return app;
}
