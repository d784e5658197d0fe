import { fc, test } from "@fast-check/vitest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiResponse, type Harness, startHarness } from "../../testing/harness.ts";
import { backgroundRewrapSettled } from "../../testing/rewrap.ts";

/*
 * Every route the app serves, taken from the app itself, called (mostly) by an admin with random JSON bodies,
 * random query strings and random path parameters: the answer is a 2xx or a 4xx from the error table
 * in docs/api.md, in the JSON error shape, and never a 5xx. Path parameters and query values may hold
 * any code point.
 */

/** The 4xx answers docs/api.md lists, by status. */
const DOCUMENTED_4XX: Record<number, readonly string[]> = {
  400: ["invalid_request"],
  401: ["unauthenticated"],
  403: ["forbidden"],
  404: ["not_found"],
  405: ["method_not_allowed"],
  409: ["conflict", "verification_failed"],
  413: ["payload_too_large", "audit_record_too_large"],
  410: ["version_destroyed", "recovery_window_passed", "tenant_deleted"],
  415: ["unsupported_media_type"],
  422: ["reference_not_found"],
  429: ["rate_limited"],
  431: ["headers_too_large"],
};

const TENANT = "acme";
const SECRET = "db-password";
let h: Harness;
let admin: string;
/** Mostly the admin; sometimes a narrower role on the tenant, or no token, whose refusals must be documented too. */
let callers: (string | undefined)[];
let routes: { method: string; path: string }[];

beforeAll(async () => {
  h = await startHarness();
  admin = await h.token("admin");
  callers = [
    admin,
    admin,
    admin,
    await h.token("operator", [TENANT]),
    await h.token("runner", [TENANT]),
    await h.token("auditor", [TENANT]),
    undefined,
  ];
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } })).status).toBe(
    201,
  );
  const put = (body: unknown) =>
    h.call("PUT", `/v1/tenants/${TENANT}/secrets/${SECRET}`, { token: admin, body });
  expect((await put({ value: "one" })).status).toBe(200);
  expect((await put({ value: "two" })).status).toBe(200);
  routes = [
    ...new Map(
      h.app.routes.filter((r) => r.method !== "ALL").map((r) => [`${r.method} ${r.path}`, r] as const),
    ).values(),
  ].map(({ method, path }) => ({ method, path }));
  const document = await (await h.call("GET", "/openapi.json")).json();
  documentedCodes = ({ method, path }, status) => {
    const operation = document.paths[path.replace(/:([A-Za-z0-9_]+)/g, "{$1}")]?.[method.toLowerCase()];
    const schema = operation?.responses?.[String(status)]?.content?.["application/json"]?.schema;
    return (schema?.anyOf?.at(-1) ?? schema)?.properties?.error?.properties?.code?.enum ?? [];
  };
});
afterAll(async () => {
  // `POST /v1/kek/rewrap` answers 202 and leaves the worker running; the store must outlive it.
  await backgroundRewrapSettled(h);
  await h.close();
});

/** The codes the OpenAPI document gives a route (`GET /v1/...` with `{param}`) for one status. */
let documentedCodes: (route: { method: string; path: string }, status: number) => string[];

function expectDocumented(
  route: string,
  response: ApiResponse,
  pattern?: { method: string; path: string },
): void {
  const where = `${route} -> ${response.status} ${response.text.slice(0, 300)}`;
  expect(response.status, where).toBeLessThan(500);
  if (response.status < 400) return;
  expect(Object.keys(DOCUMENTED_4XX), where).toContain(String(response.status));
  expect(response.headers.get("content-type") ?? "", where).toMatch(/^application\/json/);
  const body = JSON.parse(response.text);
  expect(Object.keys(body), where).toEqual(["error"]);
  expect(Object.keys(body.error).sort(), where).toEqual(["code", "message"]);
  expect(DOCUMENTED_4XX[response.status], where).toContain(body.error.code);
  // And the route's own entry in the OpenAPI document names it under that status.
  if (pattern !== undefined)
    expect(documentedCodes(pattern, response.status), where).toContain(body.error.code);
  expect(typeof body.error.message, where).toBe("string");
}

/** Field names the schemas know, so random bodies reach past "unknown field" into each field's rules. */
const KNOWN_FIELDS = [
  "value",
  "cas",
  "stage",
  "clientRequestToken",
  "version",
  "role",
  "tenants",
  "ttlSeconds",
  "tenantId",
  "rotationPeriodDays",
  "generator",
  "length",
  "alphabet",
  "maxVersions",
] as const;
const KNOWN_QUERY = [
  "version",
  "stage",
  "limit",
  "cursor",
  "withinDays",
  "expectSequence",
  "expectHash",
  "action",
  "outcome",
  "actor",
  "from",
  "to",
  "since",
  "until",
  "secretName",
] as const;

const scalar = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.integer(),
  fc.integer({ min: -3, max: 100 }),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom("pending", "current", "previous", "admin", "operator", "runner", "auditor", "*", TENANT),
);
const jsonish = fc.oneof(
  scalar,
  fc.array(scalar, { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), scalar, { maxKeys: 3 }),
);
const body = fc.oneof(
  fc.constant(undefined),
  fc.jsonValue({ maxDepth: 3 }),
  fc.dictionary(fc.constantFrom(...KNOWN_FIELDS), jsonish, { maxKeys: 5 }),
  // Near the schemas: a few fields with values of the right type, so bodies also get through to 2xx.
  fc.record(
    {
      value: fc.string({ maxLength: 30 }),
      cas: fc.integer({ min: 0, max: 4 }),
      stage: fc.constant("pending"),
      clientRequestToken: fc.string({ minLength: 1, maxLength: 40 }),
      version: fc.integer({ min: 1, max: 4 }),
      role: fc.constantFrom("admin", "operator", "runner", "auditor"),
      tenants: fc.array(fc.constantFrom(TENANT, "*", "other"), { maxLength: 2 }),
      ttlSeconds: fc.integer({ min: -10, max: 100000 }),
      tenantId: fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
      rotationPeriodDays: fc.oneof(fc.integer({ min: 0, max: 400 }), fc.constant(null)),
    },
    { requiredKeys: [] },
  ),
  // Not JSON at all.
  fc.string({ maxLength: 40 }).map((text) => ({ raw: text })),
);
const queryValue = fc.oneof(
  fc.string({ maxLength: 20, unit: "binary" }),
  fc.integer({ min: -5, max: 1000 }).map(String),
  fc.constantFrom("pending", "current", "previous", "1", "2", "0", "-1", "1e3", "", "a".repeat(64)),
);
const query = fc
  .array(fc.tuple(fc.oneof(fc.constantFrom(...KNOWN_QUERY), fc.string({ maxLength: 10 })), queryValue), {
    maxLength: 4,
  })
  .map((pairs) =>
    pairs.length === 0
      ? ""
      : `?${pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&")}`,
  );
const param = (known: string) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constant(known) },
    { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 70, unit: "binary" }) },
  );
const headers = fc.record(
  { "x-audit-reason": fc.oneof(fc.constant("property test"), fc.string({ maxLength: 30 })) },
  { requiredKeys: [] },
);

function fill(path: string, tenant: string, name: string, id: string): string {
  return path
    .replace(":tenantId", encodeURIComponent(tenant))
    .replace(":name", encodeURIComponent(name))
    .replace(":id", encodeURIComponent(id));
}

describe("random input against every route", () => {
  it("finds the app's routes", () => {
    expect(routes.length).toBeGreaterThanOrEqual(20);
    expect(routes).toContainEqual({ method: "PUT", path: "/v1/tenants/:tenantId/secrets/:name" });
    expect(routes).toContainEqual({ method: "POST", path: "/v1/tokens" });
    expect(routes).toContainEqual({ method: "POST", path: "/v1/bindings" });
    expect(routes).toContainEqual({ method: "DELETE", path: "/v1/bindings/:id" });
  });

  test.prop(
    [
      fc.nat(),
      param(TENANT),
      param(SECRET),
      fc.string({ minLength: 1, maxLength: 40 }),
      query,
      body,
      headers,
      fc.nat(),
    ],
    { numRuns: 400 },
  )(
    "answers 2xx or a documented 4xx in the JSON error shape, never 5xx",
    async (pick, tenant, name, id, qs, payload, extra, who) => {
      const route = routes[pick % routes.length];
      if (route === undefined) throw new Error("no routes");
      const path = `${fill(route.path, tenant, name, id)}${qs}`;
      // Fetch refuses a body on GET and HEAD, so those get only the query string.
      const sent = route.method === "GET" ? undefined : payload;
      const raw = sent !== null && typeof sent === "object" && !Array.isArray(sent) && "raw" in sent;
      const token = callers[who % callers.length];
      const response = await h.call(route.method, path, {
        ...(token === undefined ? {} : { token }),
        ...(sent === undefined ? {} : { body: raw ? String(sent.raw) : sent }),
        headers: raw ? { "content-type": "application/json", ...extra } : extra,
      });
      expectDocumented(`${token === admin ? "admin" : "other"} ${route.method} ${path}`, response, route);
    },
  );
});
