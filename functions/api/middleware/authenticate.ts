import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { Authenticator } from "../../../shared/domain/audit-trail.ts";
import type { RequestContext } from "../../../shared/domain/context.ts";
import { OPERATIONS, type Operation } from "../../../shared/domain/operations.ts";
import { secretNameSchema, tenantIdSchema } from "../../../shared/domain/schemas.ts";
import { type Principal, SYSTEM_SCOPE } from "../../../shared/domain/types.ts";
import { credentialsOf } from "../credentials.ts";

export type AuthenticatedEnv = { Variables: { requestId: string; ctx: RequestContext } };

export interface AuthenticateOptions {
  readonly tokens: Authenticator;
  /** What the route does, from the operations table, so a refused attempt is recorded against it. */
  readonly operation: Operation;
}

/**
 * Verifies the caller (a bearer token, or on the IAM routes its binding) before any input is looked at, and records a refused attempt against the
 * tenant and secret named in the path (or the system scope when the path names none validly).
 */
export function authenticate(options: AuthenticateOptions) {
  if (OPERATIONS[options.operation]?.permission == null) {
    throw new TypeError(`${options.operation} is not an operation a caller can ask for`);
  }
  const { tokens, operation } = options;
  return createMiddleware<AuthenticatedEnv>(async function authenticate(c, next) {
    c.set("ctx", { requestId: c.get("requestId"), principal: await principalOf(c, tokens, operation) });
    await next();
  });
}

/**
 * The caller's principal, or a refusal (401) recorded against what the path names. For the route that
 * authenticates inside its use case, to call before it reports bad input: no caller learns what was
 * wrong with a request before it has shown a valid token.
 */
export function principalOf(c: Context, tokens: Authenticator, operation: Operation): Promise<Principal> {
  const tenant = tenantIdSchema.safeParse(c.req.param("tenantId"));
  const name = secretNameSchema.safeParse(c.req.param("name"));
  return tokens.authenticate(credentialsOf(c), c.get("requestId"), {
    tenantId: tenant.success ? tenant.data : SYSTEM_SCOPE,
    action: operation,
    ...(name.success ? { secretName: name.data } : {}),
  });
}

/** `authenticate` bound to one token service, for a group of routes that differ only in their operation. */
export function authenticator(
  tokens: Authenticator,
): (operation: Operation) => ReturnType<typeof authenticate> {
  if (tokens === undefined) throw new TypeError("authenticator needs a token service");
  return (operation) => authenticate({ tokens, operation });
}
