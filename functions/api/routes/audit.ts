import { type Context, Hono } from "hono";
import { describeVerification } from "../../../shared/domain/audit-chain.ts";
import { SYSTEM_SCOPE } from "../../../shared/domain/types.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, pageBody, pageOf, queryWith } from "../http.ts";
import { type AuthenticatedEnv, authenticator } from "../middleware/authenticate.ts";
import { tenantScope } from "../middleware/tenant-scope.ts";
import { EXPORT_PAGE_BYTES, EXPORT_TRAILER_BYTES, exportLineBytes, exportLines } from "../ndjson.ts";
import { auditExportBody, auditHeadBody, auditPageBody, auditVerifyBody } from "../openapi/bodies.ts";
import { BOUNDED } from "../openapi/error-codes.ts";
import { documented, type RouteDoc } from "../openapi/route-doc.ts";
import {
  auditExportQuerySchema,
  auditFilter,
  auditQuerySchema,
  auditVerifyQuerySchema,
  tenantPathSchema,
} from "../schemas.ts";

/** The documentation of a route that exists for a tenant and for the system scope, told once. */
const forScope = (doc: Omit<RouteDoc, "operationId" | "path">, operationId: string, tenant: boolean) =>
  documented({
    ...doc,
    operationId: tenant ? `${operationId}Tenant` : `${operationId}System`,
    summary: `${doc.summary}: ${tenant ? "a tenant's" : "the system scope's (admin only)"}`,
    ...(tenant ? { path: tenantPathSchema } : {}),
  });

const listDoc = {
  summary: "Audit records, newest first",
  tag: "audit",
  operation: "audit.read",
  query: auditQuerySchema,
  responses: { 200: { description: "one page", schema: auditPageBody } },
  errors: ["not_found", ...BOUNDED],
} satisfies Omit<RouteDoc, "operationId">;

const exportDoc = {
  summary: "Audit records, oldest first, as JSON lines up to 4 MiB per page, then a trailer",
  tag: "audit",
  operation: "audit.export",
  query: auditExportQuerySchema,
  responses: {
    200: { description: "one page", schema: auditExportBody, contentType: "application/x-ndjson" },
  },
  errors: ["not_found", ...BOUNDED],
} satisfies Omit<RouteDoc, "operationId">;

const verifyDoc = {
  summary:
    "Verify the audit chain against its latest anchor, optionally a head recorded earlier; resumes with a cursor",
  tag: "audit",
  operation: "audit.verify",
  query: auditVerifyQuerySchema,
  responses: { 200: { description: "the verification", schema: auditVerifyBody } },
  errors: ["not_found"],
} satisfies Omit<RouteDoc, "operationId">;

/** A tenant's audit trail under its path, and the system scope's under /v1/audit: list, export, verify, head. */
export function auditRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

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

  app.get(
    "/v1/tenants/:tenantId/audit",
    forScope(listDoc, "listAudit", true),
    authenticated("audit.read"),
    tenantScope(),
    async (c) => auditPage(c, c.var.tenantId),
  );

  app.get("/v1/audit", forScope(listDoc, "listAudit", false), authenticated("audit.read"), async (c) =>
    auditPage(c, SYSTEM_SCOPE),
  );

  app.get(
    "/v1/tenants/:tenantId/audit/export",
    forScope(exportDoc, "exportAudit", true),
    authenticated("audit.export"),
    tenantScope(),
    async (c) => auditExport(c, c.var.tenantId),
  );

  app.get(
    "/v1/audit/export",
    forScope(exportDoc, "exportAudit", false),
    authenticated("audit.export"),
    async (c) => auditExport(c, SYSTEM_SCOPE),
  );

  app.get(
    "/v1/tenants/:tenantId/audit/verify",
    forScope(verifyDoc, "verifyAudit", true),
    authenticated("audit.verify"),
    tenantScope(),
    async (c) => auditVerify(c, c.var.tenantId),
  );

  app.get(
    "/v1/tenants/:tenantId/audit/head",
    documented({
      operationId: "getAuditHead",
      summary: "The tenant's audit chain head as stored, and as this instance last appended it",
      tag: "audit",
      operation: "audit.head",
      path: tenantPathSchema,
      responses: { 200: { description: "the head", schema: auditHeadBody } },
    }),
    authenticated("audit.head"),
    tenantScope(),
    async (c) => {
      return c.json(await runtime.auditQueries.head(c.var.ctx, c.var.tenantId));
    },
  );

  app.get(
    "/v1/audit/verify",
    forScope(verifyDoc, "verifyAudit", false),
    authenticated("audit.verify"),
    async (c) => auditVerify(c, SYSTEM_SCOPE),
  );

  return app;
}
