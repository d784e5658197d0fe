import { Hono } from "hono";
import type { Runtime } from "../../../shared/runtime/container.ts";
import type { AppEnv } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { tenantScope } from "../middleware/tenant-scope.ts";
import { dekRotatedBody, dekStatusBody, kekReportBody, rewrapRequestBody } from "../openapi/bodies.ts";
import { documented } from "../openapi/route-doc.ts";
import { tenantPathSchema } from "../schemas.ts";

/** The keys under the secrets: a tenant's DEK rotation and its status, the KEK report and rewrap. */
export function keyRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

  app.post(
    "/v1/tenants/:tenantId/rotate-dek",
    documented({
      operationId: "rotateDek",
      summary: "Create the tenant's next DEK version and queue the re-encryption sweep",
      tag: "keys",
      operation: "tenant.rotate-dek",
      path: tenantPathSchema,
      responses: { 200: { description: "the new DEK version", schema: dekRotatedBody } },
      errors: ["not_found", "conflict", "kek_mismatch", "tenant_deleted", "rate_limited"],
    }),
    authenticated("tenant.rotate-dek"),
    tenantScope(),
    async (c) => {
      return c.json(await runtime.dekRotation.rotateDek(c.var.ctx, c.var.tenantId));
    },
  );

  app.get(
    "/v1/tenants/:tenantId/rotation",
    documented({
      operationId: "getDekRotation",
      summary: "DEK versions with a live count of ciphertexts on each, and the sweep's progress",
      tag: "keys",
      operation: "rotation.read",
      path: tenantPathSchema,
      responses: { 200: { description: "the tenant's DEKs", schema: dekStatusBody } },
      errors: ["not_found"],
    }),
    authenticated("rotation.read"),
    tenantScope(),
    async (c) => {
      return c.json(await runtime.dekRotation.status(c.var.ctx, c.var.tenantId));
    },
  );

  app.get(
    "/v1/kek",
    documented({
      operationId: "getKekReport",
      summary: "DEKs per KEK, whether each KEK may be removed, and the re-wrap's progress",
      tag: "keys",
      operation: "kek.read",
      responses: { 200: { description: "the report", schema: kekReportBody } },
      errors: ["directory_backfill_pending"],
    }),
    authenticated("kek.read"),
    async (c) => {
      return c.json(await runtime.kekReport.report(c.var.ctx));
    },
  );

  // 202: the re-wrap is handed to the rotation function (locally, a background worker); GET /v1/kek
  // shows its progress.
  app.post(
    "/v1/kek/rewrap",
    documented({
      operationId: "requestKekRewrap",
      summary: "Start the KEK re-wrap, or continue an unfinished one, in the rotation function",
      tag: "keys",
      operation: "kek.rewrap",
      responses: { 202: { description: "accepted", schema: rewrapRequestBody } },
      errors: ["conflict", "dispatch_unavailable", "directory_backfill_pending"],
    }),
    authenticated("kek.rewrap"),
    async (c) => {
      return c.json(await runtime.rewrapRequests.request(c.var.ctx), 202);
    },
  );

  return app;
}
