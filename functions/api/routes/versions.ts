import { Hono } from "hono";
import * as z from "zod";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, pageOf, parseWith, queryWith } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { secretScope } from "../middleware/tenant-scope.ts";
import { versionsPageBody } from "../openapi/bodies.ts";
import { documented } from "../openapi/route-doc.ts";
import { pageQuerySchema, secretPathSchema } from "../schemas.ts";

const versionParamSchema = z
  .string()
  .regex(/^[1-9][0-9]{0,8}$/, "version must be a positive integer")
  .transform(Number);

/** A secret's versions over their life: metadata, destruction, undelete and purge. */
export function versionRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

  app.get(
    "/v1/tenants/:tenantId/secrets/:name/versions",
    documented({
      operationId: "listSecretVersions",
      summary:
        "A secret's versions as metadata: labels, creator, DEK version, destroyed or not; never a value",
      tag: "secrets",
      operation: "secret.versions",
      path: secretPathSchema,
      query: pageQuerySchema,
      responses: { 200: { description: "one page of versions, oldest first", schema: versionsPageBody } },
      errors: ["not_found"],
    }),
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
    documented({
      operationId: "destroySecretVersion",
      summary: "Destroy one version for good: its ciphertext is removed, its metadata kept",
      tag: "secrets",
      operation: "secret.destroy-version",
      path: secretPathSchema.extend({ version: versionParamSchema }),
      responses: { 204: { description: "destroyed (or already destroyed)" } },
      errors: ["not_found", "conflict"],
    }),
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
    documented({
      operationId: "undeleteSecret",
      summary: "Bring a deleted secret back with its history, within the recovery window",
      tag: "secrets",
      operation: "secret.undelete",
      path: secretPathSchema,
      responses: {
        200: {
          description: "the current version again",
          schema: z.strictObject({ name: z.string(), version: z.number().int() }),
        },
      },
      errors: ["not_found", "conflict", "recovery_window_passed"],
    }),
    authenticated("secret.undelete"),
    secretScope(),
    async (c) => c.json(await runtime.versionLifecycle.undelete(c.var.ctx, c.var.tenantId, c.var.name)),
  );

  app.post(
    "/v1/tenants/:tenantId/secrets/:name/purge",
    documented({
      operationId: "purgeSecret",
      summary: "Destroy everything stored for the name, live or deleted",
      tag: "secrets",
      operation: "secret.purge",
      path: secretPathSchema,
      responses: { 204: { description: "purged" } },
      errors: ["not_found", "conflict"],
    }),
    authenticated("secret.purge"),
    secretScope(),
    async (c) => {
      await runtime.versionLifecycle.purge(c.var.ctx, c.var.tenantId, c.var.name);
      return c.body(null, 204);
    },
  );

  return app;
}
