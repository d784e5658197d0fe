import { Hono } from "hono";
import { z } from "zod";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, pageOf, parseWith, queryWith } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { secretScope } from "../middleware/tenant-scope.ts";
import { pageQuerySchema } from "../schemas.ts";

const versionParamSchema = z
  .string()
  .regex(/^[1-9][0-9]{0,8}$/, "version must be a positive integer")
  .transform(Number);

/** A secret's versions over their life: metadata, destruction, undelete and purge. */
export function versionRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.tokens);

  app.get(
    "/v1/tenants/:tenantId/secrets/:name/versions",
    authenticated("secret.versions"),
    secretScope(),
    async (c) => {
      const { limit, cursor } = pageOf(queryWith(c, pageQuerySchema));
      return c.json(
        await runtime.versionLifecycle.versions(c.var.ctx, c.var.tenantId, c.var.name, limit, cursor),
      );
    },
  );

  app.delete(
    "/v1/tenants/:tenantId/secrets/:name/versions/:version",
    authenticated("secret.destroy-version"),
    secretScope(),
    async (c) => {
      const version = parseWith(versionParamSchema, c.req.param("version"), "version");
      await runtime.versionLifecycle.destroy(c.var.ctx, c.var.tenantId, c.var.name, version);
      return c.body(null, 204);
    },
  );

  app.post(
    "/v1/tenants/:tenantId/secrets/:name/undelete",
    authenticated("secret.undelete"),
    secretScope(),
    async (c) => c.json(await runtime.versionLifecycle.undelete(c.var.ctx, c.var.tenantId, c.var.name)),
  );

  app.post(
    "/v1/tenants/:tenantId/secrets/:name/purge",
    authenticated("secret.purge"),
    secretScope(),
    async (c) => {
      await runtime.versionLifecycle.purge(c.var.ctx, c.var.tenantId, c.var.name);
      return c.body(null, 204);
    },
  );

  return app;
}
