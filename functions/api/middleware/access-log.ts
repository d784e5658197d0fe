import { createMiddleware } from "hono/factory";
import type { Logger } from "../../../shared/observability/logger.ts";

export interface AccessLogOptions {
  readonly logger: Logger;
}

/**
 * One structured line per request, after the response is settled. It names the route pattern, not the
 * URL, and never a header or body: those are where tokens and values travel.
 */
export function accessLog(options: AccessLogOptions) {
  if (options.logger === undefined) throw new TypeError("accessLog needs a logger");
  const { logger } = options;
  return createMiddleware<{ Variables: { requestId: string } }>(async function accessLog(c, next) {
    const started = performance.now();
    await next();
    c.header("X-Request-Id", c.get("requestId"));
    c.header("Cache-Control", "no-store");
    logger.info("request", {
      requestId: c.get("requestId"),
      method: c.req.method,
      route: c.req.routePath,
      status: c.res.status,
      durationMs: Math.round(performance.now() - started),
    });
  });
}
