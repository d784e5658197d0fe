import { Hono } from "hono";
import { renderPrometheus } from "../../../shared/observability/prometheus.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import type { AppEnv } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";

export interface OpsOptions {
  /** Serve `GET /metrics` (see AppOptions.exposeMetrics). */
  readonly exposeMetrics: boolean;
}

/**
 * The operator's routes: `/health` without a token, which says only whether the service is usable,
 * its report with the reasons for admins, and `/metrics` where it is exposed.
 */
export function opsRoutes(runtime: Runtime, options: OpsOptions): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.tokens);

  app.get("/health", async (c) => {
    // The KEK and the store only: an anonymous probe costs no audit-chain read.
    const healthy = (await runtime.health.assess()).problems.length === 0;
    if (!healthy) return c.json({ status: "unavailable" }, 503);
    // Under a global seal every tenant request is refused, so the service is not usable either.
    const sealed = (await runtime.health.globallySealed()) === true;
    return c.json({ status: sealed ? "sealed" : "ok" }, sealed ? 503 : 200);
  });

  app.get("/v1/health", authenticated("health.read"), async (c) => {
    const report = await runtime.health.details(c.var.ctx);
    return c.json(report, report.healthy ? 200 : 503);
  });

  if (options.exposeMetrics) {
    app.get("/metrics", (c) =>
      c.text(renderPrometheus(runtime.metrics), 200, { "Content-Type": "text/plain; version=0.0.4" }),
    );
  }

  return app;
}
