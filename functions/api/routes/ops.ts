import { Hono } from "hono";
import { renderPrometheus } from "../../../shared/observability/prometheus.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import type { AppEnv } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { healthReportBody, metricsBody, openApiBody, publicHealthBody } from "../openapi/bodies.ts";
import { openApiHandler } from "../openapi/document.ts";
import { documented } from "../openapi/route-doc.ts";

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
  const authenticated = authenticator(runtime.callers);

  app.get(
    "/health",
    documented({
      operationId: "getHealth",
      summary: "Whether the KEK and the store are usable",
      tag: "service",
      responses: {
        200: { description: "usable", schema: publicHealthBody },
        503: { description: "not usable", schema: publicHealthBody },
      },
    }),
    async (c) => {
      // The KEK and the store only: an anonymous probe costs no audit-chain read.
      const healthy = (await runtime.health.assess()).problems.length === 0;
      return c.json({ status: healthy ? "ok" : "unavailable" }, healthy ? 200 : 503);
    },
  );

  app.get(
    "/v1/health",
    documented({
      operationId: "getHealthReport",
      summary: "The health check with its report",
      tag: "service",
      operation: "health.read",
      responses: {
        200: { description: "healthy", schema: healthReportBody },
        503: { description: "unhealthy, with the reasons", schema: healthReportBody },
      },
    }),
    authenticated("health.read"),
    async (c) => {
      const report = await runtime.health.details(c.var.ctx);
      return c.json(report, report.healthy ? 200 : 503);
    },
  );

  if (options.exposeMetrics) {
    app.get(
      "/metrics",
      documented({
        operationId: "getMetrics",
        summary: "Counters in Prometheus text format (local server only)",
        tag: "service",
        responses: {
          200: { description: "the counters", schema: metricsBody, contentType: "text/plain; version=0.0.4" },
        },
      }),
      (c) => c.text(renderPrometheus(runtime.metrics), 200, { "Content-Type": "text/plain; version=0.0.4" }),
    );
  }

  return app;
}

/** `GET /openapi.json`, of the app it is mounted on: mounted last, once every route is there. */
export function openApiRoute(app: Hono<AppEnv>): void {
  app.get(
    "/openapi.json",
    documented({
      operationId: "getOpenApi",
      summary: "This document: every route, its parameters, bodies, answers and error codes",
      tag: "service",
      responses: { 200: { description: "the OpenAPI 3.1 document", schema: openApiBody } },
    }),
    openApiHandler(app),
  );
}
