import { Hono } from "hono";
import { ValidationError } from "../../../shared/domain/errors.ts";
import { deleteTenantSchema } from "../../../shared/domain/schemas.ts";
import { deadlineIn } from "../../../shared/domain/work.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody, ON_DEMAND_BUDGET_MS } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { tenantScope } from "../middleware/tenant-scope.ts";
import { deletionCertificateBody, tenantDeletedBody, tenantDeletingBody } from "../openapi/bodies.ts";
import { JSON_BODY } from "../openapi/error-codes.ts";
import { documented } from "../openapi/route-doc.ts";
import { tenantPathSchema } from "../schemas.ts";

/** Tenant deletion by crypto-shredding, and the certificate that proves it. */
export function tenantDeletionRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

  // 200 with the certificate once the sweep is done; 202 while it is not (call again to resume it).
  app.delete(
    "/v1/tenants/:tenantId",
    documented({
      operationId: "deleteTenant",
      summary: "Delete a tenant by crypto-shredding: its DEKs first, then its items; the audit chain stays",
      description:
        "`confirm` must repeat the tenant id. 202 when the sweep ran out of time: send it again to resume.",
      tag: "tenants",
      operation: "tenant.delete",
      path: tenantPathSchema,
      body: deleteTenantSchema,
      responses: {
        200: { description: "deleted, with its certificate", schema: tenantDeletedBody },
        202: { description: "shredded; the sweep goes on when asked again", schema: tenantDeletingBody },
      },
      errors: [...JSON_BODY, "not_found", "conflict"],
    }),
    authenticated("tenant.delete"),
    tenantScope(),
    async (c) => {
      const { confirm } = await jsonBody(c, deleteTenantSchema);
      if (confirm !== c.var.tenantId) {
        throw new ValidationError("body.confirm must repeat the tenant id of the path");
      }
      const outcome = await runtime.tenantDeletion.delete(
        c.var.ctx,
        c.var.tenantId,
        deadlineIn(ON_DEMAND_BUDGET_MS),
      );
      return c.json(outcome, outcome.status === "deleted" ? 200 : 202);
    },
  );

  app.get(
    "/v1/tenants/:tenantId/deletion-certificate",
    documented({
      operationId: "getDeletionCertificate",
      summary: "A deleted tenant's certificate, and whether its MAC verifies",
      tag: "tenants",
      operation: "tenant.deletion-certificate",
      path: tenantPathSchema,
      responses: { 200: { description: "the certificate", schema: deletionCertificateBody } },
      errors: ["not_found"],
    }),
    authenticated("tenant.deletion-certificate"),
    tenantScope(),
    async (c) => c.json(await runtime.tenantDeletion.certificate(c.var.ctx, c.var.tenantId)),
  );

  return app;
}
