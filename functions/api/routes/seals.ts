import { Hono } from "hono";
import { sealSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { tenantScope } from "../middleware/tenant-scope.ts";
import { sealViewBody } from "../openapi/bodies.ts";
import { JSON_BODY } from "../openapi/error-codes.ts";
import { documented } from "../openapi/route-doc.ts";
import { tenantPathSchema } from "../schemas.ts";

/**
 * The kill switch (seed 002 §7.1): seal one tenant or every tenant, and unseal. An unseal that waits
 * for a second admin answers 202 with the request on record; the call that completes it answers 200.
 */
export function sealRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);
  const sealed = { description: "the seal state after the call", schema: sealViewBody };
  const unsealed = {
    200: { description: "unsealed (or was not sealed): the state after the call", schema: sealViewBody },
    202: { description: "the unseal waits for a second admin's call", schema: sealViewBody },
  };

  app.post(
    "/v1/tenants/:tenantId/seal",
    documented({
      operationId: "sealTenant",
      summary: "Seal a tenant: every other operation on it is refused with 423 until it is unsealed",
      tag: "seal",
      operation: "tenant.seal",
      path: tenantPathSchema,
      body: sealSchema,
      responses: { 200: sealed },
      errors: [...JSON_BODY, "not_found", "tenant_deleted"],
    }),
    authenticated("tenant.seal"),
    tenantScope(),
    async (c) => {
      const { reason } = await jsonBody(c, sealSchema);
      return c.json(await runtime.seals.seal(c.var.ctx, c.var.tenantId, reason));
    },
  );

  app.post(
    "/v1/tenants/:tenantId/unseal",
    documented({
      operationId: "unsealTenant",
      summary: "Unseal a tenant, or ask to where the stage wants a second admin",
      description:
        "409 when the admin who asked to unseal is the one approving. A deleted tenant can still be unsealed, so its reads answer 410 `tenant_deleted`.",
      tag: "seal",
      operation: "tenant.unseal",
      path: tenantPathSchema,
      body: sealSchema,
      responses: unsealed,
      errors: [...JSON_BODY, "not_found", "conflict"],
    }),
    authenticated("tenant.unseal"),
    tenantScope(),
    async (c) => {
      const { reason } = await jsonBody(c, sealSchema);
      const { view, done } = await runtime.seals.unseal(c.var.ctx, c.var.tenantId, reason);
      return c.json(view, done ? 200 : 202);
    },
  );

  app.post(
    "/v1/seal",
    documented({
      operationId: "sealAll",
      summary: "Seal every tenant at once (the global seal, scope `*`)",
      tag: "seal",
      operation: "system.seal",
      body: sealSchema,
      responses: { 200: sealed },
      errors: JSON_BODY,
    }),
    authenticated("system.seal"),
    async (c) => {
      const { reason } = await jsonBody(c, sealSchema);
      return c.json(await runtime.seals.sealAll(c.var.ctx, reason));
    },
  );

  app.post(
    "/v1/unseal",
    documented({
      operationId: "unsealAll",
      summary: "Lift the global seal, with the same second-admin rule",
      tag: "seal",
      operation: "system.unseal",
      body: sealSchema,
      responses: unsealed,
      errors: [...JSON_BODY, "conflict"],
    }),
    authenticated("system.unseal"),
    async (c) => {
      const { reason } = await jsonBody(c, sealSchema);
      const { view, done } = await runtime.seals.unsealAll(c.var.ctx, reason);
      return c.json(view, done ? 200 : 202);
    },
  );

  return app;
}
