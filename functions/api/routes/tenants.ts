import { Hono } from "hono";
import { createTenantSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody, pageBody, pageOf, queryWith } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { tenantScope } from "../middleware/tenant-scope.ts";
import { tenantBody, tenantsPageBody } from "../openapi/bodies.ts";
import { JSON_BODY } from "../openapi/error-codes.ts";
import { documented } from "../openapi/route-doc.ts";
import { pageQuerySchema, tenantPathSchema } from "../schemas.ts";

export function tenantRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

  app.post(
    "/v1/tenants",
    documented({
      operationId: "createTenant",
      summary: "Create a tenant; it gets DEK version 1",
      tag: "tenants",
      operation: "tenant.create",
      body: createTenantSchema,
      responses: { 201: { description: "the tenant", schema: tenantBody } },
      errors: [...JSON_BODY, "conflict"],
    }),
    authenticated("tenant.create"),
    async (c) => {
      const { tenantId } = await jsonBody(c, createTenantSchema);
      return c.json(await runtime.tenants.create(c.var.ctx, tenantId), 201);
    },
  );

  app.get(
    "/v1/tenants",
    documented({
      operationId: "listTenants",
      summary: "List tenant ids in order, one page at a time (admin: it names every tenant)",
      tag: "tenants",
      operation: "tenant.list",
      query: pageQuerySchema,
      responses: { 200: { description: "one page of tenant ids", schema: tenantsPageBody } },
    }),
    authenticated("tenant.list"),
    async (c) => {
      const { limit, cursor } = pageOf(queryWith(c, pageQuerySchema));
      return c.json(pageBody("tenants", await runtime.tenants.list(c.var.ctx, limit, cursor)));
    },
  );

  app.get(
    "/v1/tenants/:tenantId",
    documented({
      operationId: "getTenant",
      summary: "A tenant's metadata and DEK versions with the KEK that wraps each; never key material",
      tag: "tenants",
      operation: "tenant.read",
      path: tenantPathSchema,
      responses: { 200: { description: "the tenant", schema: tenantBody } },
      errors: ["not_found", "tenant_deleted"],
    }),
    authenticated("tenant.read"),
    tenantScope(),
    async (c) => {
      return c.json(await runtime.tenants.get(c.var.ctx, c.var.tenantId));
    },
  );

  return app;
}
