import { createMiddleware } from "hono/factory";
import { secretNameSchema, tenantIdSchema } from "../../../shared/domain/schemas.ts";
import { parseWith } from "../http.ts";

export type TenantScopeEnv = { Variables: { tenantId: string } };
export type SecretScopeEnv = { Variables: { tenantId: string; name: string } };

const tenantOf = (raw: string | undefined) => parseWith(tenantIdSchema, raw, "tenantId");
const nameOf = (raw: string | undefined) => parseWith(secretNameSchema, raw, "name");

/**
 * Parses the path's `:tenantId` once, into `tenantId`; a malformed one is a 400 naming `tenantId`.
 * Mount it after `authenticate` where the route has one: a bad token is refused before input is read.
 */
export function tenantScope() {
  return createMiddleware<TenantScopeEnv>(async function tenantScope(c, next) {
    c.set("tenantId", tenantOf(c.req.param("tenantId")));
    await next();
  });
}

/** As `tenantScope`, then the path's `:name` into `name`: the tenant is checked first, then the name. */
export function secretScope() {
  return createMiddleware<SecretScopeEnv>(async function secretScope(c, next) {
    c.set("tenantId", tenantOf(c.req.param("tenantId")));
    c.set("name", nameOf(c.req.param("name")));
    await next();
  });
}
