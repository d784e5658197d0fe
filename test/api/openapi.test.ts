import { validate } from "@readme/openapi-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../functions/api/app.ts";
import { UnsupportedMediaTypeError } from "../../functions/api/http.ts";
import { ERROR_CODES, ERROR_STATUS } from "../../functions/api/openapi/error-codes.ts";
import { routeDocOf } from "../../functions/api/openapi/route-doc.ts";
import * as errors from "../../shared/domain/errors.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";

// The document is drawn from the routes themselves (functions/api/openapi/). These tests hold it to the
// app: valid OpenAPI 3.1, every mounted route in it and nothing else, the error codes the error classes
// really carry, and real answers of the routes in the shapes it gives them.

type Document = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { enum?: string[] }> };
};
type Operation = {
  operationId: string;
  security?: unknown[];
  parameters?: { in: string; name: string; required?: boolean }[];
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { content?: Record<string, { schema: any }> }>;
};

let h: Harness;
let admin: string;
let doc: Document;

const toOpenApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
/** Every method and path an app answers on, as `GET /v1/...`, from the routes it mounted. */
const mounted = (app: { routes: { method: string; path: string }[] }) =>
  new Set(app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${toOpenApiPath(r.path)}`));
const documentedRoutes = (document: Document) =>
  new Set(
    Object.entries(document.paths).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
    ),
  );
const operations = (document: Document) =>
  Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({
      route: `${method.toUpperCase()} ${path}`,
      operation,
    })),
  );

beforeAll(async () => {
  h = await startHarness();
  admin = await h.token("admin");
  const response = await h.call("GET", "/openapi.json");
  expect(response.status).toBe(200);
  doc = await response.json();
});
afterAll(() => h.close());

describe("GET /openapi.json", () => {
  it("is public and a valid OpenAPI 3.1 document", async () => {
    expect(doc.openapi).toBe("3.1.0");
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid ? [] : result.errors).toEqual([]);
    expect(result.specification).toBe("OpenAPI");
  });

  it("a document the validator refuses is refused: the check has teeth", async () => {
    const broken = structuredClone(doc) as any;
    broken.paths["/v1/tokens"].post.responses = "not responses";
    expect((await validate(broken)).valid).toBe(false);
  });

  it("answers the same document every time, built once", async () => {
    const again = await (await h.call("GET", "/openapi.json")).json();
    expect(again).toEqual(doc);
  });
});

describe("route coverage", () => {
  it("documents every route the app mounts, and only those", () => {
    const routes = mounted(h.app);
    expect(routes.size).toBeGreaterThanOrEqual(25);
    expect([...routes].filter((route) => !documentedRoutes(doc).has(route))).toEqual([]);
    expect([...documentedRoutes(doc)].filter((route) => !routes.has(route))).toEqual([]);
  });

  it("follows what is mounted: /metrics is in the local server's document only", async () => {
    const local = createApp(h.runtime, { exposeMetrics: true });
    const localDoc = (await (await local.request("/openapi.json")).json()) as Document;
    expect(documentedRoutes(localDoc)).toEqual(mounted(local));
    expect(documentedRoutes(localDoc).has("GET /metrics")).toBe(true);
    expect(documentedRoutes(doc).has("GET /metrics")).toBe(false);
  });

  it("an undocumented route fails coverage", async () => {
    const app = createApp(h.runtime);
    app.get("/v1/undocumented", (c) => c.json({}));
    const extended = (await (await app.request("/openapi.json")).json()) as Document;
    expect(mounted(app).has("GET /v1/undocumented")).toBe(true);
    expect(documentedRoutes(extended).has("GET /v1/undocumented")).toBe(false);
  });

  it("gives every operation a unique id, its path parameters, and its security", () => {
    const ids = operations(doc).map(({ operation }) => operation.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { route, operation } of operations(doc)) {
      const inPath = [...route.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      const declared = (operation.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name);
      expect(declared.sort(), route).toEqual(inPath.sort());
      const isPublic = ["GET /health", "GET /metrics", "GET /openapi.json"].includes(route);
      expect(operation.security, route).toEqual(isPublic ? [] : [{ bearerToken: [] }]);
    }
  });

  it("documents the read's reason header, its selectors, and the write's body", () => {
    const read = doc.paths["/v1/tenants/{tenantId}/secrets/{name}"]?.get;
    expect(read?.parameters).toContainEqual(
      expect.objectContaining({ in: "header", name: "X-Audit-Reason", required: true }),
    );
    expect(read?.parameters?.filter((p) => p.in === "query").map((p) => p.name)).toEqual([
      "version",
      "stage",
    ]);
    const write = doc.paths["/v1/tenants/{tenantId}/secrets/{name}"]?.put;
    const body = write?.requestBody?.content["application/json"]?.schema as any;
    expect(Object.keys(body.properties).sort()).toEqual([
      "cas",
      "clientRequestToken",
      "maxVersions",
      "ref",
      "stage",
      "value",
    ]);
    // Exactly one of value and ref (a refinement the schema checks), so neither is required by shape.
    expect(body.required ?? []).toEqual([]);
    expect(body.additionalProperties).toBe(false);
  });
});

describe("error codes", () => {
  it("every error response is the JSON error body with the codes of its status", () => {
    for (const { route, operation } of operations(doc)) {
      const errorStatuses = Object.keys(operation.responses).filter((status) => Number(status) >= 400);
      expect(errorStatuses, route).toContain("500");
      if (operation.security?.length) expect(errorStatuses, route).toContain("401");
      for (const status of errorStatuses) {
        const answer = operation.responses[status]?.content?.["application/json"]?.schema;
        // A status that is also an answer of the route's own (503 from /v1/health) gives both shapes.
        const schema = answer?.anyOf?.at(-1) ?? answer;
        if (route === "GET /health" && status === "503") continue;
        expect(schema?.required, `${route} ${status}`).toEqual(["error"]);
        for (const code of schema.properties.error.properties.code.enum) {
          expect(ERROR_STATUS[code as keyof typeof ERROR_STATUS], `${route} ${status} ${code}`).toBe(
            Number(status),
          );
        }
      }
    }
    expect(doc.components.schemas.ErrorCode?.enum).toEqual(ERROR_CODES);
  });

  it("the table gives each error class its own code and status", () => {
    type AnyError = new (...args: any[]) => errors.StrongboxError;
    const classes: AnyError[] = [
      ...(Object.values(errors) as unknown[]).filter(
        (value): value is AnyError =>
          typeof value === "function" && value.prototype instanceof errors.StrongboxError,
      ),
      UnsupportedMediaTypeError,
    ];
    expect(classes.length).toBeGreaterThanOrEqual(15);
    for (const ErrorClass of classes) {
      // Every constructor takes identifiers and counts; the kek_mismatch one four of them.
      const error = new ErrorClass("x", 1, "x", []);
      expect(ERROR_STATUS[error.code as keyof typeof ERROR_STATUS], error.code).toBe(error.status);
    }
  });
});

describe("real answers conform to the documented shapes", () => {
  /** The documentation beside the route that answers `method` on `pattern`. */
  const docOf = (method: string, pattern: string) => {
    const found = h.app.routes
      .filter((r) => r.method === method && r.path === pattern)
      .map((r) => routeDocOf(r.handler))
      .find((d) => d !== undefined);
    if (found === undefined) throw new Error(`${method} ${pattern} is not documented`);
    return found;
  };

  const check = async (method: string, pattern: string, path: string, body?: unknown, reason?: string) => {
    const response = await h.call(method, path, {
      token: admin,
      ...(body === undefined ? {} : { body }),
      ...(reason === undefined ? {} : { headers: { "x-audit-reason": reason } }),
    });
    const routeDoc = docOf(method, pattern);
    const where = `${method} ${path} -> ${response.status} ${response.text.slice(0, 200)}`;
    const success = routeDoc.responses[response.status];
    expect(success, where).toBeDefined();
    if (success?.schema !== undefined) {
      const parsed = success.schema.safeParse(
        success.contentType === undefined ? JSON.parse(response.text) : response.text,
      );
      expect(parsed.success ? [] : parsed.error.issues, where).toEqual([]);
    }
    return response;
  };

  it("through a tenant, secrets, a rotation and the reports", async () => {
    const t = "/v1/tenants/conform";
    const s = `${t}/secrets/db`;
    await check("POST", "/v1/tenants", "/v1/tenants", { tenantId: "conform" });
    await check("GET", "/v1/tenants/:tenantId", t);
    await check("PUT", "/v1/tenants/:tenantId/secrets/:name", s, { value: "one" });
    await check("PUT", "/v1/tenants/:tenantId/secrets/:name/rotation", `${s}/rotation`, {
      rotationPeriodDays: 30,
      generator: { kind: "token", length: 32 },
    });
    await check("PUT", "/v1/tenants/:tenantId/secrets/:name", s, { value: "two", stage: "pending" });
    const read = await check("GET", "/v1/tenants/:tenantId/secrets/:name", s, undefined, "conformance");
    expect(await read.json()).toMatchObject({ version: 1, pendingVersion: 2 });
    expect((await read.json()).rotationDueAt).toEqual(expect.any(String));
    await check("GET", "/v1/tenants/:tenantId/secrets", `${t}/secrets`);
    await check("POST", "/v1/tenants/:tenantId/secrets/:name/promote", `${s}/promote`, {});
    await check("POST", "/v1/tenants/:tenantId/secrets/:name/rollback", `${s}/rollback`, { version: 1 });
    await check("POST", "/v1/tenants/:tenantId/secrets/:name/rotate", `${s}/rotate`, {});
    await check("GET", "/v1/tenants/:tenantId/rotation/due", `${t}/rotation/due?withinDays=60`);
    await check("POST", "/v1/tenants/:tenantId/rotate-dek", `${t}/rotate-dek`);
    await check("GET", "/v1/tenants/:tenantId/rotation", `${t}/rotation`);
    await check("GET", "/v1/kek", "/v1/kek");
    await check("GET", "/v1/tenants/:tenantId/audit", `${t}/audit`);
    await check("GET", "/v1/audit", "/v1/audit");
    await check("GET", "/v1/tenants/:tenantId/audit/export", `${t}/audit/export`);
    await check("GET", "/v1/tenants/:tenantId/audit/verify", `${t}/audit/verify`);
    await check("GET", "/v1/tenants/:tenantId/audit/head", `${t}/audit/head`);
    await check("GET", "/v1/health", "/v1/health");
    await check("GET", "/health", "/health");
    await check("POST", "/v1/rotation/run", "/v1/rotation/run");
    const token = await check("POST", "/v1/tokens", "/v1/tokens", {
      role: "runner",
      tenants: ["conform"],
      ttlSeconds: 600,
    });
    await check("DELETE", "/v1/tokens/:id", `/v1/tokens/${(await token.json()).id}`);
    await check("DELETE", "/v1/tenants/:tenantId/secrets/:name", s);
  });

  it("a field the document does not give fails: the check has teeth", () => {
    const schema = docOf("GET", "/v1/tenants/:tenantId/secrets/:name").responses[200]?.schema;
    expect(schema?.safeParse({ name: "a", version: 1, value: "v", createdAt: "t", extra: 1 }).success).toBe(
      false,
    );
  });
});
