import { Hono } from "hono";
import { breakGlassIdSchema, breakGlassRequestSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody, parseWith } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { tenantScope } from "../middleware/tenant-scope.ts";
import { breakGlassBody, breakGlassCredentialBody } from "../openapi/bodies.ts";
import { JSON_BODY } from "../openapi/error-codes.ts";
import { documented } from "../openapi/route-doc.ts";
import { tenantPathSchema } from "../schemas.ts";

/** Break-glass (seed 002 §4.2): request, approve, activate, revoke; each names its tenant in the path. */
export function breakGlassRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);
  const idOf = (raw: string | undefined) => parseWith(breakGlassIdSchema, raw, "id");
  const requestPath = tenantPathSchema.extend({ id: breakGlassIdSchema });
  const request = (description: string) => ({ description, schema: breakGlassBody });

  app.post(
    "/v1/tenants/:tenantId/break-glass",
    documented({
      operationId: "requestBreakGlass",
      summary: "Ask for time-limited admin access to one tenant; another admin must approve",
      tag: "break-glass",
      operation: "breakglass.request",
      path: tenantPathSchema,
      body: breakGlassRequestSchema,
      responses: { 201: request("the request, pending") },
      errors: [...JSON_BODY, "not_found"],
    }),
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
    documented({
      operationId: "approveBreakGlass",
      summary: "Approve a pending break-glass request; its deadline starts now",
      description: "403 for the requester and for a bootstrap admin token; 409 unless pending.",
      tag: "break-glass",
      operation: "breakglass.approve",
      path: requestPath,
      responses: { 200: request("the request, approved") },
      errors: ["not_found", "conflict"],
    }),
    authenticated("breakglass.approve"),
    tenantScope(),
    async (c) => c.json(await runtime.breakGlass.approve(c.var.ctx, c.var.tenantId, idOf(c.req.param("id")))),
  );

  app.post(
    "/v1/tenants/:tenantId/break-glass/:id/activate",
    documented({
      operationId: "activateBreakGlass",
      summary: "The requester takes the credential (`sbg_…`), once, while the approval is live",
      description:
        "The credential is an admin on this tenant alone until `expiresAt`. 503 `dispatch_unavailable` when the activation event could not be published; nothing was activated then.",
      tag: "break-glass",
      operation: "breakglass.activate",
      path: requestPath,
      responses: { 201: { description: "the credential, shown once", schema: breakGlassCredentialBody } },
      errors: ["not_found", "conflict", "dispatch_unavailable"],
    }),
    authenticated("breakglass.activate"),
    tenantScope(),
    async (c) =>
      c.json(await runtime.breakGlass.activate(c.var.ctx, c.var.tenantId, idOf(c.req.param("id"))), 201),
  );

  app.post(
    "/v1/tenants/:tenantId/break-glass/:id/revoke",
    documented({
      operationId: "revokeBreakGlass",
      summary: "Revoke a break-glass request; its credential stops at once",
      tag: "break-glass",
      operation: "breakglass.revoke",
      path: requestPath,
      responses: { 200: request("the request, revoked") },
      errors: ["not_found", "conflict"],
    }),
    authenticated("breakglass.revoke"),
    tenantScope(),
    async (c) => c.json(await runtime.breakGlass.revoke(c.var.ctx, c.var.tenantId, idOf(c.req.param("id")))),
  );

  return app;
}
