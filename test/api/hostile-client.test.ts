import { request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ItemMacs } from "../../shared/crypto/item-integrity.ts";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { mintToken } from "../../shared/crypto/tokens.ts";
import { canonicalToken } from "../../shared/domain/item-integrity.ts";
import type { AuditEvent, TokenRecord } from "../../shared/domain/types.ts";
import { TokenRepository } from "../../shared/storage/token-repository.ts";
import { type ApiResponse, type Harness, randomKek, startHarness } from "../../testing/harness.ts";

/*
 * The defects a hostile client found from outside (issue 13), each through the HTTP API: authentication
 * and token scope, expiry, the order of authentication and validation, 405s, and the audit reason.
 */

const TENANT = "acme";
const OTHER = "bravo";
const SECRET = `/v1/tenants/${TENANT}/secrets/db-password`;
const REASON = { "x-audit-reason": "hostile client test" };

const keyring = new LocalKeyring({ active: randomKek(), previous: [] });
let h: Harness;
let admin: string;

async function expectError(response: ApiResponse, status: number, code: string) {
  expect(response.status).toBe(status);
  const body = await response.json();
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error).toEqual({ code, message: expect.any(String) });
}

/** Every event of a tenant's trail (or `_system`'s with no tenant), oldest first. */
async function trail(tenant?: string): Promise<AuditEvent[]> {
  const base = tenant === undefined ? "/v1/audit" : `/v1/tenants/${tenant}/audit`;
  const response = await h.call("GET", `${base}?limit=999`, { token: admin });
  expect(response.status).toBe(200);
  return ((await response.json()).events as AuditEvent[]).reverse();
}

/** Writes a token item with the fields given, sealed with the service's own item key, as issuing would. */
async function plantToken(fields: Partial<TokenRecord>): Promise<string> {
  const minted = mintToken();
  const record: TokenRecord = {
    tokenId: minted.tokenId,
    secretHash: minted.secretHash,
    role: "admin",
    tenants: ["*"],
    createdAt: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    ...fields,
  };
  const seal = await new ItemMacs(keyring.chainKeys().itemKeys()).seal(canonicalToken(record));
  await new TokenRepository(h.table).create(record, seal);
  return minted.token;
}

beforeAll(async () => {
  // Denials are looked up by request id, so repeats are not collapsed into windows here.
  h = await startHarness({ keyring, env: { AUDIT_DENIAL_WINDOW_SECONDS: "0" } });
  admin = await h.token("admin");
  for (const tenantId of [TENANT, OTHER]) {
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId } })).status).toBe(201);
  }
  expect((await h.call("PUT", SECRET, { token: admin, body: { value: "v1" } })).status).toBe(200);
});
afterAll(() => h?.close());

describe("the bearer scheme", () => {
  for (const [title, header] of [
    ["a lowercase scheme", (t: string) => `bearer ${t}`],
    ["an uppercase scheme", (t: string) => `BEARER ${t}`],
    ["two spaces after the scheme", (t: string) => `Bearer  ${t}`],
  ] as const) {
    it(`accepts ${title}`, async () => {
      const response = await h.call("GET", SECRET, { headers: { ...REASON, authorization: header(admin) } });
      expect(response.status).toBe(200);
    });
  }

  it("still refuses another scheme, no space, and a tab", async () => {
    for (const authorization of [`Basic ${admin}`, `Bearer${admin}`, `Bearer\t${admin}`]) {
      await expectError(
        await h.call("GET", SECRET, { headers: { ...REASON, authorization } }),
        401,
        "unauthenticated",
      );
    }
  });
});

describe("token expiry", () => {
  it("refuses a token whose expiresAt does not parse, as expired", async () => {
    const token = await plantToken({ expiresAt: "not-a-date" });
    const response = await h.call("GET", SECRET, { token, headers: REASON });
    await expectError(response, 401, "unauthenticated");
    const requestId = response.headers.get("x-request-id");
    const denied = (await trail(TENANT)).filter((event) => event.requestId === requestId);
    expect(denied).toEqual([expect.objectContaining({ outcome: "denied", detail: "expired_token" })]);
  });

  it("accepts the same planted token with a valid expiry (the control)", async () => {
    const token = await plantToken({});
    expect((await h.call("GET", SECRET, { token, headers: REASON })).status).toBe(200);
  });
});

describe("token scope at issuance", () => {
  const mint = (body: unknown) => h.call("POST", "/v1/tokens", { token: admin, body });

  it("refuses an admin token with a tenant list (admins are global), and issues none", async () => {
    for (const tenants of [[TENANT], [TENANT, "*"], []]) {
      await expectError(await mint({ role: "admin", tenants, ttlSeconds: 600 }), 400, "invalid_request");
    }
    const issued = (await trail()).filter((e) => e.action === "token.create" && e.outcome === "success");
    expect(issued).toEqual([]);
  });

  it('issues a global admin token for tenants ["*"] (the control)', async () => {
    expect((await mint({ role: "admin", tenants: ["*"], ttlSeconds: 600 })).status).toBe(201);
  });

  it("refuses a token for a tenant that does not exist with 404, and a later tenant's trail starts with its creation", async () => {
    const response = await mint({ role: "operator", tenants: ["gamma"], ttlSeconds: 600 });
    await expectError(response, 404, "not_found");
    expect((await response.json()).error.message).toContain("gamma does not exist");
    await expectError(
      await mint({ role: "runner", tenants: [TENANT, "gamma"], ttlSeconds: 600 }),
      404,
      "not_found",
    );
    // The refusals are on the system trail as failed attempts, and no token came of them.
    const refused = (await trail()).filter(
      (e) => e.action === "token.create" && e.requestId === response.headers.get("x-request-id"),
    );
    expect(refused.map((e) => `${e.outcome}:${e.detail}`)).toEqual([
      "attempt:role operator for gamma",
      "failure:not_found",
    ]);
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "gamma" } })).status).toBe(
      201,
    );
    const gamma = await trail("gamma");
    expect(gamma.map((e) => `${e.action}:${e.outcome}`)).toEqual([
      "tenant.create:attempt",
      "tenant.create:success",
    ]);
    const scoped = await mint({ role: "operator", tenants: ["gamma"], ttlSeconds: 600 });
    expect(scoped.status).toBe(201);
  });
});

describe("authentication comes before validation", () => {
  /** Every /v1 route with every path parameter, the query, the reason and the body malformed. */
  const badRequests = () =>
    h.app.routes
      // The unwrap routes take no bearer token: the wrapping token in their body is the credential.
      .filter(
        (route) =>
          route.path.startsWith("/v1") && route.method !== "ALL" && !route.path.startsWith("/v1/unwrap"),
      )
      .map((route) => ({
        route: `${route.method} ${route.path}`,
        method: route.method,
        path: `${route.path
          .replace(":tenantId", "Bad_Tenant!")
          .replace(":name", "-bad-name")
          .replace(":id", "x")}?limit=0&version=-1&bogus=1`,
      }));

  it("answers every /v1 route's malformed request without a token with 401, never a detailed 400", async () => {
    const requests = badRequests();
    expect(requests.length).toBeGreaterThan(20);
    for (const { route, method, path } of requests) {
      const response = await h.call(method, path, {
        headers: { "x-audit-reason": "\u0001", "content-type": "application/json" },
        ...(method === "GET" || method === "DELETE" ? {} : { body: "{not json" }),
      });
      expect({ route, status: response.status }).toEqual({ route, status: 401 });
      await expectError(response, 401, "unauthenticated");
    }
  });

  it("the unwrap routes, whose credential is the wrapping token in the body, answer a malformed one with a bare 400", async () => {
    for (const path of ["/v1/unwrap", "/v1/unwrap/lookup"]) {
      const response = await h.call("POST", path, {
        headers: { "content-type": "application/json" },
        body: "{not json",
      });
      await expectError(response, 400, "invalid_request");
    }
  });

  it("still reports a read's bad input to a caller with a valid token (the control)", async () => {
    await expectError(await h.call("GET", SECRET, { token: admin }), 400, "invalid_request");
    await expectError(
      await h.call("GET", `${SECRET}?version=0`, { token: admin, headers: REASON }),
      400,
      "invalid_request",
    );
  });
});

describe("a wrong method on an existing route", () => {
  for (const [method, path, allow] of [
    ["PATCH", SECRET, "DELETE, GET, HEAD, PUT"],
    ["POST", `/v1/tenants/${TENANT}`, "DELETE, GET, HEAD"],
    ["DELETE", "/v1/tenants", "GET, HEAD, POST"],
    ["PUT", "/v1/tokens/abc", "DELETE"],
    ["DELETE", "/health", "GET, HEAD"],
  ] as const) {
    it(`${method} ${path} gets 405 method_not_allowed with Allow: ${allow}`, async () => {
      for (const token of [admin, undefined]) {
        const response = await h.call(method, path, { ...(token === undefined ? {} : { token }) });
        await expectError(response, 405, "method_not_allowed");
        expect(response.headers.get("allow")).toBe(allow);
      }
    });
  }

  it("leaves a path no route has a 404 without Allow, and serves HEAD where GET is (the controls)", async () => {
    const unknown = await h.call("GET", `${SECRET}/extra`, { token: admin });
    await expectError(unknown, 404, "not_found");
    expect(unknown.headers.get("allow")).toBeNull();
    expect((await h.call("HEAD", "/health")).status).toBe(200);
  });
});

describe("X-Audit-Reason beyond ASCII", () => {
  /** The header as Node delivers a client's UTF-8 bytes to the app: one character per byte. */
  const asNodeDelivers = (text: string) => Buffer.from(text, "utf8").toString("latin1");

  async function recordedReason(response: ApiResponse): Promise<string | undefined> {
    expect(response.status).toBe(200);
    const requestId = response.headers.get("x-request-id");
    const reads = (await trail(TENANT)).filter(
      (e) => e.requestId === requestId && e.action === "secret.read",
    );
    expect(reads).toHaveLength(1);
    return reads[0]?.reason;
  }

  const readWith = (reason: string) =>
    h.call("GET", SECRET, { token: admin, headers: { "x-audit-reason": reason } });

  for (const [form, sent, stored] of [
    ["raw UTF-8 bytes", asNodeDelivers("café — naïve € 日本"), "café — naïve € 日本"],
    ["percent-encoded UTF-8", "caf%C3%A9%20%E2%82%AC", "café €"],
    ["RFC 8187", "UTF-8''caf%C3%A9%20%E2%82%AC", "café €"],
    ["RFC 8187 with a language", "utf-8'fr'caf%C3%A9", "café"],
    ["latin1 bytes that are not UTF-8", "caf\u00e9", "café"],
    ["a literal percent that escapes nothing", "50% done", "50% done"],
  ] as const) {
    it(`stores a reason sent as ${form} exactly as meant`, async () => {
      expect(await recordedReason(await readWith(sent))).toBe(stored);
    });
  }

  it("refuses an RFC 8187 reason that is not percent-encoded UTF-8, and an escaped control character", async () => {
    await expectError(await readWith("UTF-8''caf%C3"), 400, "invalid_request");
    await expectError(await readWith("why%01not"), 400, "invalid_request");
  });

  it("stores raw UTF-8 sent over a real socket to the Node adapter exactly", async () => {
    const server = serve({ fetch: h.app.fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    try {
      const { port } = server.address() as AddressInfo;
      const response = await new Promise<ApiResponse>((resolve, reject) => {
        const req = httpRequest(
          {
            host: "127.0.0.1",
            port,
            path: SECRET,
            // A latin1 string is written byte for byte: these are the UTF-8 bytes of the reason.
            headers: { authorization: `Bearer ${admin}`, "x-audit-reason": asNodeDelivers("café €") },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (chunk: Buffer) => chunks.push(chunk));
            res.on("end", () => {
              const text = Buffer.concat(chunks).toString("utf8");
              const headers = new Headers();
              for (const [name, value] of Object.entries(res.headers)) headers.set(name, String(value));
              resolve({ status: res.statusCode ?? 0, headers, text, json: async () => JSON.parse(text) });
            });
          },
        );
        req.on("error", reject);
        req.end();
      });
      expect(await recordedReason(response)).toBe("café €");
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
