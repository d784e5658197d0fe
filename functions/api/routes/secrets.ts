import { type Context, Hono } from "hono";
import { putSecretSchema, secretNameSchema, tenantIdSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody, pageBody, pageOf, parseWith, queryWith } from "../http.ts";
import { authenticator, principalOf } from "../middleware/authenticate.ts";
import { secretScope, tenantScope } from "../middleware/tenant-scope.ts";
import { auditReasonSchema, pageQuerySchema, versionQuerySchema } from "../schemas.ts";

/** A read's path, query and reason, in the order their errors are reported. */
const readInput = (c: Context) => ({
  tenantId: parseWith(tenantIdSchema, c.req.param("tenantId"), "tenantId"),
  name: parseWith(secretNameSchema, c.req.param("name"), "name"),
  selector: queryWith(c, versionQuerySchema),
  reason: parseWith(auditReasonSchema, c.req.header("x-audit-reason") ?? "", "X-Audit-Reason"),
});

export function secretRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.tokens);

  app.put("/v1/tenants/:tenantId/secrets/:name", authenticated("secret.write"), secretScope(), async (c) => {
    const body = await jsonBody(c, putSecretSchema);
    return c.json(await runtime.secrets.write(c.var.ctx, c.var.tenantId, c.var.name, body));
  });

  // Reads authenticate inside the use case, which fetches the token and the secret in one round trip;
  // bad input is reported only to a caller who has first shown a valid token.
  app.get("/v1/tenants/:tenantId/secrets/:name", async (c) => {
    let input: ReturnType<typeof readInput>;
    try {
      input = readInput(c);
    } catch (error) {
      await principalOf(c, runtime.tokens, "secret.read");
      throw error;
    }
    const caller = { requestId: c.var.requestId, authorization: c.req.header("authorization") };
    const { tenantId, name, reason } = input;
    const { wrapTtlSeconds, ...selector } = input.selector;
    return c.json(await runtime.secrets.read(caller, tenantId, name, reason, selector, wrapTtlSeconds));
  });

  app.get("/v1/tenants/:tenantId/secrets", authenticated("secret.list"), tenantScope(), async (c) => {
    const { limit, cursor } = pageOf(queryWith(c, pageQuerySchema));
    const secrets = await runtime.secrets.list(c.var.ctx, c.var.tenantId, limit, cursor);
    return c.json(pageBody("secrets", secrets));
  });

  app.delete(
    "/v1/tenants/:tenantId/secrets/:name",
    authenticated("secret.delete"),
    secretScope(),
    async (c) => {
      await runtime.secrets.delete(c.var.ctx, c.var.tenantId, c.var.name);
      return c.body(null, 204);
    },
  );

  return app;
}
