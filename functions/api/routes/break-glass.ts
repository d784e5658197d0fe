import { Hono } from "hono";
import { breakGlassIdSchema, breakGlassRequestSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody, parseWith } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { tenantScope } from "../middleware/tenant-scope.ts";

/** Break-glass (seed 002 §4.2): request, approve, activate, revoke; each names its tenant in the path. */
export function breakGlassRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.tokens);
  const idOf = (raw: string | undefined) => parseWith(breakGlassIdSchema, raw, "id");

  app.post(
    "/v1/tenants/:tenantId/break-glass",
    authenticated("breakglass.request"),
    tenantScope(),
    async (c) => {
      const { reason, durationMinutes } = await jsonBody(c, breakGlassRequestSchema);
      return c.json(
        await runtime.breakGlass.request(c.var.ctx, c.var.tenantId, reason, durationMinutes),
        201,
      );
    },
  );

  app.post(
    "/v1/tenants/:tenantId/break-glass/:id/approve",
    authenticated("breakglass.approve"),
    tenantScope(),
    async (c) => c.json(await runtime.breakGlass.approve(c.var.ctx, c.var.tenantId, idOf(c.req.param("id")))),
  );

  app.post(
    "/v1/tenants/:tenantId/break-glass/:id/activate",
    authenticated("breakglass.activate"),
    tenantScope(),
    async (c) =>
      c.json(await runtime.breakGlass.activate(c.var.ctx, c.var.tenantId, idOf(c.req.param("id"))), 201),
  );

  app.post(
    "/v1/tenants/:tenantId/break-glass/:id/revoke",
    authenticated("breakglass.revoke"),
    tenantScope(),
    async (c) => c.json(await runtime.breakGlass.revoke(c.var.ctx, c.var.tenantId, idOf(c.req.param("id")))),
  );

  return app;
}
