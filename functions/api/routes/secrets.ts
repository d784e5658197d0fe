import { type Context, Hono } from "hono";
import * as z from "zod";
import { putSecretSchema, secretNameSchema, tenantIdSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { credentialsOf } from "../credentials.ts";
import { type AppEnv, jsonBody, pageBody, pageOf, parseWith, queryWith } from "../http.ts";
import { authenticator, principalOf } from "../middleware/authenticate.ts";
import { secretScope, tenantScope } from "../middleware/tenant-scope.ts";
import { secretsPageBody, secretValueBody, secretWrittenBody } from "../openapi/bodies.ts";
import { JSON_BODY, REFERENCED, SEALED } from "../openapi/error-codes.ts";
import { documented } from "../openapi/route-doc.ts";
import {
  auditReasonSchema,
  pageQuerySchema,
  secretPathSchema,
  tenantPathSchema,
  versionQuerySchema,
} from "../schemas.ts";

/** A read's path, query and reason, in the order their errors are reported. */
const readInput = (c: Context) => ({
  tenantId: parseWith(tenantIdSchema, c.req.param("tenantId"), "tenantId"),
  name: parseWith(secretNameSchema, c.req.param("name"), "name"),
  selector: queryWith(c, versionQuerySchema),
  reason: parseWith(auditReasonSchema, c.req.header("x-audit-reason") ?? "", "X-Audit-Reason"),
});

export function secretRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

  app.put(
    "/v1/tenants/:tenantId/secrets/:name",
    documented({
      operationId: "putSecret",
      summary: "Write the next version of a secret",
      description:
        "`cas` as in Vault KV v2: 0 creates only, N writes only over version N. `stage: pending` writes it beside the current one. The same `clientRequestToken` with the same value answers with the version it made and writes nothing.",
      tag: "secrets",
      operation: "secret.write",
      path: secretPathSchema,
      body: putSecretSchema,
      responses: { 200: { description: "the version written", schema: secretWrittenBody } },
      errors: [...JSON_BODY, ...SEALED, ...REFERENCED, "conflict"],
    }),
    authenticated("secret.write"),
    secretScope(),
    async (c) => {
      const body = await jsonBody(c, putSecretSchema);
      return c.json(await runtime.secrets.write(c.var.ctx, c.var.tenantId, c.var.name, body));
    },
  );

  // Reads authenticate inside the use case, which fetches the token and the secret in one round trip;
  // bad input is reported only to a caller who has first shown a valid token.
  app.get(
    "/v1/tenants/:tenantId/secrets/:name",
    documented({
      operationId: "getSecret",
      summary: "Read a secret's value",
      description:
        "The current version, or the one `version` or `stage` names (not both). The reason goes into the read's audit record.",
      tag: "secrets",
      operation: "secret.read",
      path: secretPathSchema,
      query: versionQuerySchema,
      headers: z.object({ "X-Audit-Reason": auditReasonSchema }),
      responses: { 200: { description: "the value", schema: secretValueBody } },
      errors: [...SEALED, ...REFERENCED, "version_destroyed"],
    }),
    async (c) => {
      let input: ReturnType<typeof readInput>;
      try {
        input = readInput(c);
      } catch (error) {
        await principalOf(c, runtime.callers, "secret.read");
        throw error;
      }
      const caller = { requestId: c.var.requestId, credentials: credentialsOf(c) };
      const { tenantId, name, selector, reason } = input;
      return c.json(await runtime.secrets.read(caller, tenantId, name, reason, selector));
    },
  );

  app.get(
    "/v1/tenants/:tenantId/secrets",
    documented({
      operationId: "listSecrets",
      summary: "List a tenant's secrets: names and versions, never values",
      tag: "secrets",
      operation: "secret.list",
      path: tenantPathSchema,
      query: pageQuerySchema,
      responses: { 200: { description: "one page", schema: secretsPageBody } },
      errors: ["not_found", "response_too_large"],
    }),
    authenticated("secret.list"),
    tenantScope(),
    async (c) => {
      const { limit, cursor } = pageOf(queryWith(c, pageQuerySchema));
      const secrets = await runtime.secrets.list(c.var.ctx, c.var.tenantId, limit, cursor);
      return c.json(pageBody("secrets", secrets));
    },
  );

  app.delete(
    "/v1/tenants/:tenantId/secrets/:name",
    documented({
      operationId: "deleteSecret",
      summary: "Soft-delete a secret: hidden from reads and lists, versions kept; a later write revives it",
      tag: "secrets",
      operation: "secret.delete",
      path: secretPathSchema,
      responses: { 204: { description: "deleted" } },
      errors: ["not_found"],
    }),
    authenticated("secret.delete"),
    secretScope(),
    async (c) => {
      await runtime.secrets.delete(c.var.ctx, c.var.tenantId, c.var.name);
      return c.body(null, 204);
    },
  );

  return app;
}
