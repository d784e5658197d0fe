import { createMiddleware } from "hono/factory";
import { secretNameSchema, tenantIdSchema } from "../../../shared/domain/schemas.ts";
import { AUDIT_ACTIONS, type AuditAction, SYSTEM_SCOPE } from "../../../shared/domain/types.ts";
import type { RequestContext } from "../../../shared/services/context.ts";
import type { TokenService } from "../../../shared/services/token-service.ts";

export type AuthenticatedEnv = { Variables: { requestId: string; ctx: RequestContext } };

export interface AuthenticateOptions {
  readonly tokens: TokenService;
  /** What the route does, so a refused attempt is recorded against what it tried. */
  readonly action: AuditAction;
}

/**
 * Verifies the bearer token before any input is looked at, and records a refused attempt against the
 * tenant and secret named in the path (or the system scope when the path names none validly).
 */
export function authenticate(options: AuthenticateOptions) {
  if (!AUDIT_ACTIONS.includes(options.action)) throw new TypeError(`unknown audit action ${options.action}`);
  const { tokens, action } = options;
  return createMiddleware<AuthenticatedEnv>(async function authenticate(c, next) {
    const tenant = tenantIdSchema.safeParse(c.req.param("tenantId"));
    const name = secretNameSchema.safeParse(c.req.param("name"));
    const principal = await tokens.authenticate(c.req.header("authorization"), c.get("requestId"), {
      tenantId: tenant.success ? tenant.data : SYSTEM_SCOPE,
      action,
      ...(name.success ? { secretName: name.data } : {}),
    });
    c.set("ctx", { requestId: c.get("requestId"), principal });
    await next();
  });
}

/** `authenticate` bound to one token service, for a group of routes that differ only in their action. */
export function authenticator(
  tokens: TokenService,
): (action: AuditAction) => ReturnType<typeof authenticate> {
  if (tokens === undefined) throw new TypeError("authenticator needs a token service");
  return (action) => authenticate({ tokens, action });
}
