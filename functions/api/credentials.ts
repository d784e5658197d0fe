import type { Context } from "hono";
import { getPath } from "hono/utils/url";
import type { Credentials, IamIdentity } from "../../shared/domain/context.ts";

/**
 * The IAM route set: every `/v1` route is also served under `/iam/v1`, where API Gateway's IAM
 * authorization (SigV4) stands in front (docs/api.md#iam-callers). The app routes both to the same
 * handlers; only the credentials they authenticate with differ.
 */
const IAM_PREFIX = "/iam";

/** The path as Hono decodes it, so the route chosen and the credentials read can never disagree. */
function onIamRoutes(request: Request): boolean {
  return getPath(request).startsWith(`${IAM_PREFIX}/`);
}

/** The app's `getPath`: an `/iam/v1/...` request is routed as `/v1/...`. */
export function routedPath(request: Request): string {
  const path = getPath(request);
  return path.startsWith(`${IAM_PREFIX}/`) ? path.slice(IAM_PREFIX.length) : path;
}

/**
 * What the request offers to prove who it is. On the IAM routes only the identity API Gateway put in
 * the Lambda event counts (an Authorization header is not read); everywhere else only the bearer
 * header does. No header can claim an IAM identity, and a request that reached the IAM routes without
 * API Gateway's IAM context (the local server, a misrouted request) has none.
 */
export function credentialsOf(c: Context): Credentials {
  if (onIamRoutes(c.req.raw)) return { kind: "iam", identity: iamIdentityOf(c.env) };
  return { kind: "bearer", authorization: c.req.header("authorization") };
}

const ACCOUNT_ID = /^\d{12}$/;

/** `requestContext.authorizer.iam` of an HTTP API (payload 2.0) event that went through the IAM route. */
function iamIdentityOf(env: unknown): IamIdentity | undefined {
  // Only the Lambda adapter passes an `event`, the one API Gateway sent; the Node server passes none.
  const event = (env as { event?: unknown } | undefined)?.event as
    | {
        version?: unknown;
        rawPath?: unknown;
        requestContext?: { authorizer?: { iam?: { userArn?: unknown; accountId?: unknown } } };
      }
    | undefined;
  if (event?.version !== "2.0" || typeof event.rawPath !== "string") return undefined;
  if (!event.rawPath.startsWith(`${IAM_PREFIX}/`)) return undefined;
  const iam = event.requestContext?.authorizer?.iam;
  const userArn = iam?.userArn;
  const accountId = iam?.accountId;
  if (typeof userArn !== "string" || typeof accountId !== "string" || !ACCOUNT_ID.test(accountId)) {
    return undefined;
  }
  return { userArn, accountId };
}
