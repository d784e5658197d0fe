import { Hono } from "hono";
import {
  promoteSchema,
  rollbackSchema,
  rotateSecretSchema,
  rotationPolicySchema,
} from "../../../shared/domain/schemas.ts";
import { deadlineIn } from "../../../shared/domain/work.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody, ON_DEMAND_BUDGET_MS, pageBody, pageOf, queryWith } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { secretScope, tenantScope } from "../middleware/tenant-scope.ts";
import { dueQuerySchema } from "../schemas.ts";

const DEFAULT_DUE_WITHIN_DAYS = 7;

/** Secrets' rotation: policies, on-demand rotations, promotion and rollback, what is due, and runs. */
export function rotationRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

  app.put(
    "/v1/tenants/:tenantId/secrets/:name/rotation",
    authenticated("secret.rotation-policy"),
    secretScope(),
    async (c) => {
      const body = await jsonBody(c, rotationPolicySchema);
      return c.json(await runtime.rotationPolicies.setPolicy(c.var.ctx, c.var.tenantId, c.var.name, body));
    },
  );

  app.post(
    "/v1/tenants/:tenantId/secrets/:name/rotate",
    authenticated("secret.rotate"),
    secretScope(),
    async (c) => {
      const { clientRequestToken } = await jsonBody(c, rotateSecretSchema);
      return c.json(
        await runtime.valueRotation.rotate(c.var.ctx, c.var.tenantId, c.var.name, clientRequestToken),
      );
    },
  );

  app.post(
    "/v1/tenants/:tenantId/secrets/:name/promote",
    authenticated("secret.promote"),
    secretScope(),
    async (c) => {
      const { version } = await jsonBody(c, promoteSchema);
      return c.json(await runtime.valueRotation.promote(c.var.ctx, c.var.tenantId, c.var.name, version));
    },
  );

  app.post(
    "/v1/tenants/:tenantId/secrets/:name/rollback",
    authenticated("secret.rollback"),
    secretScope(),
    async (c) => {
      const { version } = await jsonBody(c, rollbackSchema);
      return c.json(await runtime.valueRotation.rollback(c.var.ctx, c.var.tenantId, c.var.name, version));
    },
  );

  app.get("/v1/tenants/:tenantId/rotation/due", authenticated("rotation.read"), tenantScope(), async (c) => {
    const query = queryWith(c, dueQuerySchema);
    const { limit, cursor } = pageOf(query);
    const within = query.withinDays ?? DEFAULT_DUE_WITHIN_DAYS;
    const due = await runtime.rotationPolicies.listDue(c.var.ctx, c.var.tenantId, within, limit, cursor);
    return c.json(pageBody("secrets", due));
  });

  app.post("/v1/rotation/run", authenticated("rotation.run"), async (c) => {
    return c.json(await runtime.scheduledWork.runNow(c.var.ctx, deadlineIn(ON_DEMAND_BUDGET_MS)));
  });

  return app;
}
