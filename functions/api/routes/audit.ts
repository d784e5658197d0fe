import { type Context, Hono } from "hono";
import { describeVerification } from "../../../shared/domain/audit-chain.ts";
import { SYSTEM_SCOPE } from "../../../shared/domain/types.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, pageBody, pageOf, queryWith } from "../http.ts";
import { type AuthenticatedEnv, authenticator } from "../middleware/authenticate.ts";
import { tenantScope } from "../middleware/tenant-scope.ts";
import { EXPORT_PAGE_BYTES, EXPORT_TRAILER_BYTES, exportLineBytes, exportLines } from "../ndjson.ts";
import { auditExportQuerySchema, auditFilter, auditQuerySchema, auditVerifyQuerySchema } from "../schemas.ts";

/** A tenant's audit trail under its path, and the system scope's under /v1/audit: list, export, verify, head. */
export function auditRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.tokens);

  const auditPage = async <E extends AuthenticatedEnv>(c: Context<E>, scope: string) => {
    const query = queryWith(c, auditQuerySchema);
    const { limit, cursor } = pageOf(query);
    const events = await runtime.auditQueries.list(c.var.ctx, scope, limit, cursor, auditFilter(query));
    return c.json(pageBody("events", events));
  };

  const auditExport = async <E extends AuthenticatedEnv>(c: Context<E>, scope: string) => {
    const query = queryWith(c, auditExportQuerySchema);
    const page = await runtime.auditQueries.export(c.var.ctx, scope, auditFilter(query), {
      cursor: query.cursor,
      budget: { maxBytes: EXPORT_PAGE_BYTES - EXPORT_TRAILER_BYTES, sizeOf: exportLineBytes },
    });
    return c.body(exportLines(page), 200, { "Content-Type": "application/x-ndjson" });
  };

  const auditVerify = async <E extends AuthenticatedEnv>(c: Context<E>, scope: string) => {
    const query = queryWith(c, auditVerifyQuerySchema);
    const expected =
      query.expectSequence === undefined || query.expectHash === undefined
        ? undefined
        : { sequence: query.expectSequence, hash: query.expectHash };
    const result = await runtime.auditQueries.verify(c.var.ctx, scope, expected, query.cursor);
    return c.json({ ...result, summary: describeVerification(result) });
  };

  app.get("/v1/tenants/:tenantId/audit", authenticated("audit.read"), tenantScope(), async (c) =>
    auditPage(c, c.var.tenantId),
  );

  app.get("/v1/audit", authenticated("audit.read"), async (c) => auditPage(c, SYSTEM_SCOPE));

  app.get("/v1/tenants/:tenantId/audit/export", authenticated("audit.export"), tenantScope(), async (c) =>
    auditExport(c, c.var.tenantId),
  );

  app.get("/v1/audit/export", authenticated("audit.export"), async (c) => auditExport(c, SYSTEM_SCOPE));

  app.get("/v1/tenants/:tenantId/audit/verify", authenticated("audit.verify"), tenantScope(), async (c) =>
    auditVerify(c, c.var.tenantId),
  );

  app.get("/v1/tenants/:tenantId/audit/head", authenticated("audit.head"), tenantScope(), async (c) => {
    return c.json(await runtime.auditQueries.head(c.var.ctx, c.var.tenantId));
  });

  app.get("/v1/audit/verify", authenticated("audit.verify"), async (c) => auditVerify(c, SYSTEM_SCOPE));

  return app;
}
