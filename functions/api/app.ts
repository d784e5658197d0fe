import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { describeVerification } from "../../shared/domain/audit-chain.ts";
import { StrongboxError } from "../../shared/domain/errors.ts";
import {
  createTenantSchema,
  createTokenSchema,
  promoteSchema,
  putSecretSchema,
  rollbackSchema,
  rotateSecretSchema,
  rotationPolicySchema,
  secretNameSchema,
  tenantIdSchema,
  tokenIdSchema,
} from "../../shared/domain/schemas.ts";
import { type AuditAction, SYSTEM_SCOPE } from "../../shared/domain/types.ts";
import { renderPrometheus } from "../../shared/observability/prometheus.ts";
import type { Runtime } from "../../shared/runtime/container.ts";
import { deadlineIn } from "../../shared/services/rotation-runner.ts";
import { errorResponse, jsonBody, pageBody, parseWith } from "./http.ts";
import { accessLog } from "./middleware/access-log.ts";
import { type AuthenticatedEnv, authenticate } from "./middleware/authenticate.ts";
import { jsonLines } from "./ndjson.ts";
import {
  auditExportQuerySchema,
  auditFilter,
  auditQuerySchema,
  auditReasonSchema,
  auditVerifyQuerySchema,
  dueQuerySchema,
  pageQuerySchema,
  versionQuerySchema,
} from "./schemas.ts";

type AppEnv = AuthenticatedEnv;

/** JSON-escaped 64 KiB values can grow up to six-fold; anything past this is refused unread. */
const MAX_BODY_BYTES = 512 * 1024;
const DEFAULT_PAGE_SIZE = 50;
/** On-demand rotation work stops in time to answer within API Gateway's 29-second limit. */
const ON_DEMAND_BUDGET_MS = 20_000;
const DEFAULT_DUE_WITHIN_DAYS = 7;

export interface AppOptions {
  /**
   * Serve `GET /metrics` in Prometheus text format, without a token: it holds only fixed counter names
   * and numbers, never a tenant, secret or token. The local server turns it on for self-hosters'
   * scrapers; on Lambda the same counts go to CloudWatch as EMF instead.
   */
  readonly exposeMetrics?: boolean;
}

export function createApp(runtime: Runtime, options: AppOptions = {}): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const { logger } = runtime;

  // Request ids are always ours: a client-chosen id would let callers forge audit correlation.
  app.use(requestId({ headerName: "" }));
  app.use(accessLog({ logger }));
  app.use(secureHeaders());
  app.use(async function closeExpiredDenialWindows(_c, next) {
    await runtime.audit.closeExpiredDenials();
    await next();
  });
  app.use(
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) =>
        errorResponse(c, 413, "payload_too_large", `request body exceeds ${MAX_BODY_BYTES} bytes`),
    }),
  );

  const authenticated = (action: AuditAction) => authenticate({ tokens: runtime.tokens, action });

  const tenantParam = (raw: string | undefined) => parseWith(tenantIdSchema, raw, "tenantId");
  const nameParam = (raw: string | undefined) => parseWith(secretNameSchema, raw, "name");
  const page = (query: Record<string, string>) => {
    const parsed = parseWith(pageQuerySchema, query, "query");
    return { limit: parsed.limit ?? DEFAULT_PAGE_SIZE, cursor: parsed.cursor };
  };

  app.get("/health", async (c) => {
    const report = await runtime.health.check();
    return c.json(report, report.healthy ? 200 : 503);
  });

  if (options.exposeMetrics === true) {
    app.get("/metrics", (c) =>
      c.text(renderPrometheus(runtime.metrics), 200, { "Content-Type": "text/plain; version=0.0.4" }),
    );
  }

  app.post("/v1/tenants", authenticated("tenant.create"), async (c) => {
    const { tenantId } = await jsonBody(c, createTenantSchema);
    return c.json(await runtime.tenants.create(c.get("ctx"), tenantId), 201);
  });

  app.get("/v1/tenants/:tenantId", authenticated("tenant.read"), async (c) => {
    return c.json(await runtime.tenants.get(c.get("ctx"), tenantParam(c.req.param("tenantId"))));
  });

  app.put("/v1/tenants/:tenantId/secrets/:name", authenticated("secret.write"), async (c) => {
    const tenantId = tenantParam(c.req.param("tenantId"));
    const name = nameParam(c.req.param("name"));
    const body = await jsonBody(c, putSecretSchema);
    return c.json(await runtime.secrets.write(c.get("ctx"), tenantId, name, body));
  });

  // Reads authenticate inside the use case, which fetches the token and the secret in one round trip.
  app.get("/v1/tenants/:tenantId/secrets/:name", async (c) => {
    const tenantId = tenantParam(c.req.param("tenantId"));
    const name = nameParam(c.req.param("name"));
    const selector = parseWith(versionQuerySchema, c.req.query(), "query");
    const reason = parseWith(auditReasonSchema, c.req.header("x-audit-reason") ?? "", "X-Audit-Reason");
    const caller = { requestId: c.get("requestId"), authorization: c.req.header("authorization") };
    return c.json(await runtime.secrets.read(caller, tenantId, name, reason, selector));
  });

  app.put(
    "/v1/tenants/:tenantId/secrets/:name/rotation",
    authenticated("secret.rotation-policy"),
    async (c) => {
      const tenantId = tenantParam(c.req.param("tenantId"));
      const name = nameParam(c.req.param("name"));
      const body = await jsonBody(c, rotationPolicySchema);
      return c.json(await runtime.secretRotation.setPolicy(c.get("ctx"), tenantId, name, body));
    },
  );

  app.post("/v1/tenants/:tenantId/secrets/:name/rotate", authenticated("secret.rotate"), async (c) => {
    const tenantId = tenantParam(c.req.param("tenantId"));
    const name = nameParam(c.req.param("name"));
    const { clientRequestToken } = await jsonBody(c, rotateSecretSchema);
    return c.json(await runtime.secretRotation.rotate(c.get("ctx"), tenantId, name, clientRequestToken));
  });

  app.post("/v1/tenants/:tenantId/secrets/:name/promote", authenticated("secret.promote"), async (c) => {
    const tenantId = tenantParam(c.req.param("tenantId"));
    const name = nameParam(c.req.param("name"));
    const { version } = await jsonBody(c, promoteSchema);
    return c.json(await runtime.secretRotation.promote(c.get("ctx"), tenantId, name, version));
  });

  app.post("/v1/tenants/:tenantId/secrets/:name/rollback", authenticated("secret.rollback"), async (c) => {
    const tenantId = tenantParam(c.req.param("tenantId"));
    const name = nameParam(c.req.param("name"));
    const { version } = await jsonBody(c, rollbackSchema);
    return c.json(await runtime.secretRotation.rollback(c.get("ctx"), tenantId, name, version));
  });

  app.get("/v1/tenants/:tenantId/rotation/due", authenticated("rotation.read"), async (c) => {
    const tenantId = tenantParam(c.req.param("tenantId"));
    const query = parseWith(dueQuerySchema, c.req.query(), "query");
    const within = query.withinDays ?? DEFAULT_DUE_WITHIN_DAYS;
    const due = await runtime.secretRotation.listDue(
      c.get("ctx"),
      tenantId,
      within,
      query.limit ?? DEFAULT_PAGE_SIZE,
      query.cursor,
    );
    return c.json(pageBody("secrets", due));
  });

  app.post("/v1/tenants/:tenantId/rotate-dek", authenticated("tenant.rotate-dek"), async (c) => {
    const tenantId = tenantParam(c.req.param("tenantId"));
    return c.json(await runtime.rotation.rotateDek(c.get("ctx"), tenantId));
  });

  app.get("/v1/tenants/:tenantId/rotation", authenticated("rotation.read"), async (c) => {
    return c.json(await runtime.rotation.status(c.get("ctx"), tenantParam(c.req.param("tenantId"))));
  });

  app.get("/v1/kek", authenticated("kek.read"), async (c) => {
    return c.json(await runtime.rotation.kekReport(c.get("ctx")));
  });

  app.post("/v1/kek/rewrap", authenticated("kek.rewrap"), async (c) => {
    const run = await runtime.rotation.startRewrap(
      c.get("ctx"),
      c.get("requestId"),
      deadlineIn(ON_DEMAND_BUDGET_MS),
    );
    return c.json(run);
  });

  app.post("/v1/rotation/run", authenticated("rotation.run"), async (c) => {
    return c.json(await runtime.rotationRunner.runNow(c.get("ctx"), deadlineIn(ON_DEMAND_BUDGET_MS)));
  });

  app.get("/v1/tenants/:tenantId/secrets", authenticated("secret.list"), async (c) => {
    const tenantId = tenantParam(c.req.param("tenantId"));
    const { limit, cursor } = page(c.req.query());
    return c.json(pageBody("secrets", await runtime.secrets.list(c.get("ctx"), tenantId, limit, cursor)));
  });

  app.delete("/v1/tenants/:tenantId/secrets/:name", authenticated("secret.delete"), async (c) => {
    const tenantId = tenantParam(c.req.param("tenantId"));
    await runtime.secrets.delete(c.get("ctx"), tenantId, nameParam(c.req.param("name")));
    return c.body(null, 204);
  });

  const auditPage = async (c: Context<AppEnv>, scope: string) => {
    const query = parseWith(auditQuerySchema, c.req.query(), "query");
    const events = await runtime.audit.list(
      c.get("ctx"),
      scope,
      query.limit ?? DEFAULT_PAGE_SIZE,
      query.cursor,
      auditFilter(query),
    );
    return c.json(pageBody("events", events));
  };

  const auditExport = async (c: Context<AppEnv>, scope: string) => {
    const query = parseWith(auditExportQuerySchema, c.req.query(), "query");
    const records = await runtime.audit.export(c.get("ctx"), scope, auditFilter(query));
    return c.body(jsonLines(records, logger), 200, { "Content-Type": "application/x-ndjson" });
  };

  app.get("/v1/tenants/:tenantId/audit", authenticated("audit.read"), async (c) =>
    auditPage(c, tenantParam(c.req.param("tenantId"))),
  );

  app.get("/v1/audit", authenticated("audit.read"), async (c) => auditPage(c, SYSTEM_SCOPE));

  app.get("/v1/tenants/:tenantId/audit/export", authenticated("audit.export"), async (c) =>
    auditExport(c, tenantParam(c.req.param("tenantId"))),
  );

  app.get("/v1/audit/export", authenticated("audit.export"), async (c) => auditExport(c, SYSTEM_SCOPE));

  const auditVerify = async (c: Context<AppEnv>, scope: string) => {
    const query = parseWith(auditVerifyQuerySchema, c.req.query(), "query");
    const expected =
      query.expectSequence === undefined || query.expectHash === undefined
        ? undefined
        : { sequence: query.expectSequence, hash: query.expectHash };
    const result = await runtime.audit.verify(c.get("ctx"), scope, expected);
    return c.json({ ...result, summary: describeVerification(result) });
  };

  app.get("/v1/tenants/:tenantId/audit/verify", authenticated("audit.verify"), async (c) =>
    auditVerify(c, tenantParam(c.req.param("tenantId"))),
  );

  app.get("/v1/tenants/:tenantId/audit/head", authenticated("audit.head"), async (c) => {
    return c.json(await runtime.audit.head(c.get("ctx"), tenantParam(c.req.param("tenantId"))));
  });

  app.get("/v1/audit/verify", authenticated("audit.verify"), async (c) => auditVerify(c, SYSTEM_SCOPE));

  app.post("/v1/tokens", authenticated("token.create"), async (c) => {
    const input = await jsonBody(c, createTokenSchema);
    return c.json(await runtime.tokens.create(c.get("ctx"), input), 201);
  });

  app.delete("/v1/tokens/:id", authenticated("token.revoke"), async (c) => {
    await runtime.tokens.revoke(c.get("ctx"), parseWith(tokenIdSchema, c.req.param("id"), "id"));
    return c.body(null, 204);
  });

  app.notFound((c) => errorResponse(c, 404, "not_found", "no such route"));

  app.onError((error, c) => {
    if (error instanceof StrongboxError) {
      if (error.status >= 500) {
        logger.error("request failed", {
          requestId: c.get("requestId"),
          code: error.code,
          message: error.message,
        });
      }
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
