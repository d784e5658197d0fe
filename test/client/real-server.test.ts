import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  NotFoundError,
  ReasonRequiredError,
  StrongboxClient,
  type StrongboxClientOptions,
  StrongboxConfigError,
  StrongboxNetworkError,
  UnauthenticatedError,
} from "../../client/src/index.ts";
import { ServerProcess } from "../../testing/server-process.ts";

// @strongbox/client against the real local server: `node --import tsx local/server.ts` as `npm start`
// runs it, over HTTP on loopback. Requests are counted on the server's side, from its access log.

const TENANT = "client-test";
const canary = `CANARY-${randomBytes(12).toString("hex")}`;
const dataDir = mkdtempSync(join(tmpdir(), "strongbox-client-"));
let server: ServerProcess;
let baseUrl: string;
let token: string;
/** Another party's client, for the writes a reader does not see coming (its cache is off). */
let operator: StrongboxClient;

/** What the client logs; canary-checked at the end together with the console. */
const logged: string[] = [];
const logger = {
  warn: (message: string, fields: object) => logged.push(`${message} ${JSON.stringify(fields)}`),
};
const thrown: unknown[] = [];
const consoleSpies = (["log", "info", "warn", "error", "debug"] as const).map((method) =>
  vi
    .spyOn(console, method)
    .mockImplementation((...args: unknown[]) => logged.push(args.map(String).join(" "))),
);

const reader = (options: Partial<StrongboxClientOptions> = {}) =>
  new StrongboxClient({ baseUrl, token, reason: "client test", logger, ...options });

/** Successful secret reads the server has logged so far. */
function reads(): number {
  return server
    .logs()
    .filter(
      (line) =>
        line.message === "request" &&
        line.method === "GET" &&
        line.route === "/v1/tenants/:tenantId/secrets/:name" &&
        line.status === 200,
    ).length;
}

/** The server's count once its log has caught up: polled until it reaches `atLeast`, then once more after a pause. */
async function settledReads(atLeast: number): Promise<number> {
  const deadline = Date.now() + 5_000;
  while (reads() < atLeast && Date.now() < deadline) await sleep(20);
  await sleep(150);
  return reads();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function capture<T>(promise: Promise<T>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    thrown.push(error);
    return error;
  }
  throw new Error("expected a rejection");
}

beforeAll(async () => {
  server = ServerProcess.start({ env: { DATA_DIR: dataDir } });
  baseUrl = await server.listening();
  token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
  const created = await fetch(`${baseUrl}/v1/tenants`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ tenantId: TENANT }),
  });
  expect(created.status).toBe(201);
  operator = new StrongboxClient({ baseUrl, token, reason: "operator", cache: false, logger });
  await operator.putSecret(TENANT, "canary", { value: canary });
}, 60_000);

afterAll(async () => {
  await server.stop();
  for (const spy of consoleSpies) spy.mockRestore();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("before any request", () => {
  it("a malformed base URL, plain http to another host, or no credentials fail with a typed error", () => {
    const fetchSpy = vi.fn(fetch);
    for (const bad of ["not a url", "ftp://127.0.0.1/", "http://strongbox.example.com", `${baseUrl}?x=1`]) {
      expect(() => new StrongboxClient({ baseUrl: bad, token, fetch: fetchSpy })).toThrow(
        StrongboxConfigError,
      );
    }
    expect(() => new StrongboxClient({ baseUrl } as StrongboxClientOptions)).toThrow(StrongboxConfigError);
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  it("a read without a reason fails with ReasonRequiredError and sends nothing", async () => {
    const fetchSpy = vi.fn(fetch);
    const client = new StrongboxClient({ baseUrl, token, fetch: fetchSpy });
    expect(await capture(client.getSecret(TENANT, "canary"))).toBeInstanceOf(ReasonRequiredError);
    expect(await capture(client.getSecret(TENANT, "canary", { reason: "  " }))).toBeInstanceOf(
      ReasonRequiredError,
    );
    expect(await capture(client.getSecret(TENANT, "canary", { reason: "a\nb" }))).toBeInstanceOf(
      ReasonRequiredError,
    );
    expect(() => new StrongboxClient({ baseUrl, token, reason: "x".repeat(257) })).toThrow(
      ReasonRequiredError,
    );
    expect(fetchSpy).not.toHaveBeenCalled();
  });
});

describe("reads through the cache", () => {
  it("100 concurrent reads on a cold cache make exactly one request", async () => {
    const before = await settledReads(0);
    const client = reader();
    const values = await Promise.all(Array.from({ length: 100 }, () => client.getSecret(TENANT, "canary")));
    expect(new Set(values.map((v) => v.value))).toEqual(new Set([canary]));
    expect((await settledReads(before + 1)) - before).toBe(1);
  });

  it("a client at module scope, as in a Lambda function: a warm invocation makes no call", async () => {
    const client = reader(); // module scope
    const handler = async () => (await client.getSecret(TENANT, "canary")).version; // the handler
    const before = await settledReads(0);
    expect(await handler()).toBe(1); // cold
    for (let i = 0; i < 20; i += 1) expect(await handler()).toBe(1); // warm
    expect((await settledReads(before + 1)) - before).toBe(1);
  });

  it("a reason beyond ASCII reaches the audit record as written", async () => {
    await reader({ reason: "déploiement 50% ✓", cache: false }).getSecret(TENANT, "canary");
    const audit = await fetch(`${baseUrl}/v1/tenants/${TENANT}/audit?action=secret.read&limit=1`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(((await audit.json()) as any).events[0].reason).toBe("déploiement 50% ✓");
  });

  it("through a rotation the reader moves to the promoted value within its pending TTL", async () => {
    const name = "rotating";
    await operator.putSecret(TENANT, name, { value: "v1" });
    // Far apart, so that the new value arriving within the pending TTL's bound cannot be maxTtl's doing.
    const maxTtlMs = 5_000;
    const pendingTtlMs = 150;
    const slackMs = 1_500;
    const client = reader({ cache: { maxTtlMs, pendingTtlMs } });
    expect((await client.getSecret(TENANT, name)).value).toBe("v1");

    const staged = Date.now();
    await operator.putSecret(TENANT, name, { value: "v2", stage: "pending" });
    // Within maxTtl the reader sees the pending version on its next read of the server.
    let seen = await client.getSecret(TENANT, name);
    while (seen.pendingVersion === undefined) {
      expect(Date.now() - staged).toBeLessThan(maxTtlMs + slackMs);
      await sleep(25);
      seen = await client.getSecret(TENANT, name);
    }
    expect(seen).toMatchObject({ value: "v1", version: 1, pendingVersion: 2 });

    await operator.promoteSecret(TENANT, name, { version: 2 });
    const promoted = Date.now();
    while ((await client.getSecret(TENANT, name)).value !== "v2") {
      expect(Date.now() - promoted).toBeLessThan(pendingTtlMs + slackMs);
      await sleep(10);
    }
    expect(Date.now() - promoted).toBeLessThan(pendingTtlMs + slackMs);
  });

  it("the 'Secret Rotated' hook: the next read fetches the rotated value", async () => {
    const name = "generated";
    await operator.putSecret(TENANT, name, { value: "seed" });
    await operator.setRotationPolicy(TENANT, name, {
      rotationPeriodDays: 30,
      generator: { kind: "token", length: 32 },
    });
    const client = reader();
    const first = await client.getSecret(TENANT, name);
    expect(Date.parse(first.rotationDueAt ?? "")).toBeGreaterThan(Date.now());
    const rotated = await operator.rotateSecret(TENANT, name);
    expect(rotated).toMatchObject({ status: "rotated", version: 2 });
    expect((await client.getSecret(TENANT, name)).version).toBe(1); // cached until its due date or maxTtl
    client.onSecretRotated({
      "detail-type": "Secret Rotated",
      detail: { tenantId: TENANT, secretName: name },
    });
    expect((await client.getSecret(TENANT, name)).version).toBe(2);
  });

  it("a write through the client is read back at once (its own cache is dropped)", async () => {
    const client = reader();
    await client.putSecret(TENANT, "own", { value: "a" });
    expect((await client.getSecret(TENANT, "own")).value).toBe("a");
    await client.putSecret(TENANT, "own", { value: "b" });
    expect((await client.getSecret(TENANT, "own")).value).toBe("b");
    const page = await client.listSecrets(TENANT);
    expect(page.secrets.map((s) => s.name)).toContain("own");
  });
});

describe("typed errors", () => {
  it("carry the code, the status and the request id the server logged", async () => {
    const error = await capture(reader().getSecret(TENANT, "no-such-secret"));
    expect(error).toBeInstanceOf(NotFoundError);
    const notFound = error as NotFoundError;
    expect(notFound).toMatchObject({ code: "not_found", status: 404 });
    const line = server.logs().find((l) => l.message === "request" && l.requestId === notFound.requestId);
    expect(line).toMatchObject({ status: 404, route: "/v1/tenants/:tenantId/secrets/:name" });

    const refused = await capture(reader({ token: "sbx_not_a_token" }).getSecret(TENANT, "canary"));
    expect(refused).toBeInstanceOf(UnauthenticatedError);
  });
});

describe("the local server's contract", () => {
  it("serves /openapi.json and the rendered reference at /docs", async () => {
    const document = (await (await fetch(`${baseUrl}/openapi.json`)).json()) as any;
    expect(document.paths["/v1/tenants/{tenantId}/secrets/{name}"].get.operationId).toBe("getSecret");
    const docs = await fetch(`${baseUrl}/docs`);
    expect(docs.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await docs.text()).toContain("/openapi.json");
  });
});

// Last: it stops the server.
describe("through an outage", () => {
  it("serves the stale value only within stale-if-error, then fails with a typed error", async () => {
    const maxTtlMs = 300;
    const staleIfErrorMs = 1_200;
    const client = reader({
      cache: { maxTtlMs, staleIfErrorMs, errorBackoffMs: 50 },
      retry: { maxAttempts: 2, baseDelayMs: 5 },
      timeoutMs: 1_000,
    });
    const before = Date.now();
    expect((await client.getSecret(TENANT, "canary")).value).toBe(canary);
    const fetched = Date.now();
    await server.stop();
    await sleep(maxTtlMs + 50);

    let stale = 0;
    let failure: unknown;
    while (failure === undefined) {
      const askedAt = Date.now();
      try {
        const value = await client.getSecret(TENANT, "canary");
        expect(value.value).toBe(canary);
        // Never past the bound: the cache decided no earlier than askedAt, and only before the
        // entry's expiry (at most fetch + maxTtl) plus stale-if-error.
        expect(askedAt).toBeLessThan(fetched + maxTtlMs + staleIfErrorMs);
        stale += 1;
      } catch (error) {
        failure = error;
        thrown.push(error);
      }
      expect(Date.now() - before).toBeLessThan(maxTtlMs + staleIfErrorMs + 3_000);
      await sleep(50);
    }
    expect(stale).toBeGreaterThan(3);
    expect(failure).toBeInstanceOf(StrongboxNetworkError);
    expect(Date.now()).toBeGreaterThanOrEqual(before + maxTtlMs + staleIfErrorMs);
    // And it stays failed: the stale value is not served again.
    expect(await capture(client.getSecret(TENANT, "canary"))).toBeInstanceOf(StrongboxNetworkError);
    expect(logged.some((line) => line.startsWith("serving a stale secret"))).toBe(true);
  });
});

describe("the canary", () => {
  it("is never in what the client logged or threw", () => {
    expect(logged.length).toBeGreaterThan(0);
    expect(thrown.length).toBeGreaterThan(5);
    const errors = thrown.map(
      (e) => `${String(e)} ${(e as Error).stack} ${JSON.stringify(e)} ${String((e as Error).cause)}`,
    );
    expect([...logged, ...errors].filter((text) => text.includes(canary))).toEqual([]);
  });
});
