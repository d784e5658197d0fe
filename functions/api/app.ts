import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { RateLimitedError, StrongboxError } from "../../shared/domain/errors.ts";
import type { Runtime } from "../../shared/runtime/container.ts";
import { allowedMethods } from "./allowed-methods.ts";
import { routedPath } from "./credentials.ts";
import { type AppEnv, errorResponse } from "./http.ts";
import { accessLog } from "./middleware/access-log.ts";
import { auditRoutes } from "./routes/audit.ts";
import { bindingRoutes } from "./routes/bindings.ts";
import { keyRoutes } from "./routes/keys.ts";
import { openApiRoute, opsRoutes } from "./routes/ops.ts";
import { rotationRoutes } from "./routes/rotation.ts";
import { secretRoutes } from "./routes/secrets.ts";
import { tenantDeletionRoutes } from "./routes/tenant-deletion.ts";
import { tenantRoutes } from "./routes/tenants.ts";
import { tokenRoutes } from "./routes/tokens.ts";
import { versionRoutes } from "./routes/versions.ts";

/** JSON-escaped 64 KiB values can grow up to six-fold; anything past this is refused unread. */
const MAX_BODY_BYTES = 512 * 1024;

export interface AppOptions {
  /**
   * Serve `GET /metrics` in Prometheus text format, without a token: it holds only fixed counter names
   * and numbers, never a tenant, secret or token. The local server turns it on for self-hosters'
   * scrapers; on Lambda the same counts go to CloudWatch as EMF instead.
   */
  readonly exposeMetrics?: boolean;
}

export function createApp(runtime: Runtime, options: AppOptions = {}): Hono<AppEnv> {
  // `/iam/v1/...` is routed as `/v1/...`; the credentials read differ (credentials.ts).
  const app = new Hono<AppEnv>({ getPath: routedPath });
  const { logger } = runtime;

  // Request ids are always ours: a client-chosen id would let callers forge audit correlation. On
  // Lambda it is API Gateway's own id, so the stage's access log (which names no path: tenant and
  // secret names live there) joins this function's line, which names the route pattern.
  app.use(requestId({ headerName: "", generator: gatewayRequestId }));
  app.use(accessLog({ logger }));
  app.use(secureHeaders());
  app.use(async function closeExpiredDenialWindows(_c, next) {
    await runtime.denials.closeExpired();
    await next();
  });
  app.use(
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) =>
        errorResponse(c, 413, "payload_too_large", `request body exceeds ${MAX_BODY_BYTES} bytes`),
    }),
  );

  // Every route names its whole path; each authenticates, where it does, before it parses anything.
  app.route("/", opsRoutes(runtime, { exposeMetrics: options.exposeMetrics === true }));
  app.route("/", tenantRoutes(runtime));
  app.route("/", secretRoutes(runtime));
  app.route("/", rotationRoutes(runtime));
  app.route("/", keyRoutes(runtime));
  app.route("/", auditRoutes(runtime));
  app.route("/", tokenRoutes(runtime));
  app.route("/", versionRoutes(runtime));
  app.route("/", tenantDeletionRoutes(runtime));
  app.route("/", bindingRoutes(runtime));
  // Public, like /health: the contract holds no tenant, secret or token.
  openApiRoute(app);

  const allowedOn = allowedMethods(app.routes);
  app.notFound((c) => {
    const allowed = allowedOn(c.req.path);
    if (allowed.length === 0) return errorResponse(c, 404, "not_found", "no such route");
    c.header("Allow", allowed.join(", "));
    return errorResponse(c, 405, "method_not_allowed", "this route does not take that method; see Allow");
  });

  app.onError((error, c) => {
    if (error instanceof StrongboxError) {
      if (error.status >= 500) {
        logger.error("request failed", {
          requestId: c.get("requestId"),
          code: error.code,
          // Not `message`: the logger reserves that key for its own and drops what is passed under it.
          detail: error.message,
        });
      }
      if (error instanceof RateLimitedError) c.header("Retry-After", String(error.retryAfterSeconds));
      return errorResponse(c, error.status as ContentfulStatusCode, error.code, error.message);
    }
    if (error instanceof HTTPException) {
      const status = error.status as ContentfulStatusCode;
      return errorResponse(
        c,
        status,
        status >= 500 ? "internal_error" : "invalid_request",
        "the request was refused",
      );
    }
    // Unknown errors may carry anything in their message, so only the class name is logged.
    logger.error("unexpected error", { requestId: c.get("requestId"), errorName: error.name });
    return errorResponse(c, 500, "internal_error", "internal error; see the server log for this request id");
  });

  return app;
}

/** API Gateway's request id, when the Lambda adapter passed its event; otherwise a fresh one. */
function gatewayRequestId(c: Context): string {
  const id = (c.env as { event?: { requestContext?: { requestId?: unknown } } } | undefined)?.event
    ?.requestContext?.requestId;
  return typeof id === "string" && /^[A-Za-z0-9=_-]{1,128}$/.test(id) ? id : crypto.randomUUID();
}
