import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { bootstrapToken } from "../../shared/crypto/tokens.ts";
import type { AuditEvent } from "../../shared/domain/types.ts";
import { breakGlassKey } from "../../shared/storage/keys.ts";
import { type EventBridgeEndpoint, startEventBridgeEndpoint } from "../../testing/eventbridge-endpoint.ts";
import { DUMMY_CREDENTIALS, type Harness, startHarness } from "../../testing/harness.ts";

// Break-glass (seed 002 §4.2): an operator asks, a different admin (never a bootstrap token) approves,
// the requester activates once and gets a credential for one tenant until the deadline or a revoke.

const REASON = { "x-audit-reason": "break-glass test" };
let h: Harness;
let bus: EventBridgeEndpoint;
let admin: string;
let operator: { token: string; id: string };
let bootstrapAdmin: string;

const base = (tenant = "acme") => `/v1/tenants/${tenant}/break-glass`;
const ask = (minutes = 30, token = operator.token, tenant = "acme") =>
  h.call("POST", base(tenant), { token, body: { reason: "prod incident INC-42", durationMinutes: minutes } });
const step = (id: string, action: string, token: string, tenant = "acme") =>
  h.call("POST", `${base(tenant)}/${id}/${action}`, { token });
const trail = async (tenant: string): Promise<AuditEvent[]> =>
  (await (await h.call("GET", `/v1/tenants/${tenant}/audit?limit=999`, { token: admin })).json()).events;

async function approvedAndActive(
  minutes = 30,
): Promise<{ id: string; credential: string; expiresAt: string }> {
  const requested = await ask(minutes);
  expect(requested.status).toBe(201);
  const { id } = await requested.json();
  expect((await step(id, "approve", admin)).status).toBe(200);
  const activated = await step(id, "activate", operator.token);
  expect(activated.status).toBe(201);
  return activated.json();
}

beforeAll(async () => {
  bus = await startEventBridgeEndpoint();
  // The EventBridge client signs its calls; the loopback bus takes any credentials.
  vi.stubEnv("AWS_ACCESS_KEY_ID", DUMMY_CREDENTIALS.accessKeyId);
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", DUMMY_CREDENTIALS.secretAccessKey);
  h = await startHarness({
    env: {
      EVENT_BUS_NAME: "strongbox-test-bus",
      STRONGBOX_ENVIRONMENT: "test",
      EVENTBRIDGE_ENDPOINT: bus.endpoint,
      AUDIT_DENIAL_WINDOW_SECONDS: "0",
    },
  });
  admin = await h.token("admin");
  for (const tenantId of ["acme", "other"]) {
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId } })).status).toBe(201);
    const put = await h.call("PUT", `/v1/tenants/${tenantId}/secrets/db`, {
      token: admin,
      body: { value: `${tenantId}-v` },
    });
    expect(put.status).toBe(200);
  }
  operator = await h.runtime.tokens.issue("operator", ["acme"], 3600);
  const minted = bootstrapToken("cd".repeat(32));
  if (minted === undefined) throw new Error("bootstrap token");
  expect(await h.runtime.tokens.ensureBootstrap(minted, 3600)).toBe("issued");
  bootstrapAdmin = minted.token;
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await h?.close();
  await bus?.close();
});

describe("the break-glass flow", () => {
  it("request, approval by another admin, activation: an admin on its one tenant, every use at high severity", async () => {
    const before = h.runtime.metrics.count("BreakGlassActive");
    const { id, credential, expiresAt } = await approvedAndActive();
    expect(credential).toMatch(/^sbg_/);
    expect(Date.parse(expiresAt) - Date.now()).toBeLessThanOrEqual(30 * 60_000);
    // Admin rights on acme: the audit trail, which an operator may not read.
    const audit = await h.call("GET", "/v1/tenants/acme/audit", { token: credential });
    expect(audit.status).toBe(200);
    const read = await h.call("GET", "/v1/tenants/acme/secrets/db", { token: credential, headers: REASON });
    expect(await read.json()).toMatchObject({ value: "acme-v" });
    // Nothing elsewhere: another tenant, and the system scope.
    expect(
      (await h.call("GET", "/v1/tenants/other/secrets/db", { token: credential, headers: REASON })).status,
    ).toBe(403);
    expect((await h.call("GET", "/v1/audit", { token: credential })).status).toBe(403);
    expect(
      (
        await h.call("POST", "/v1/tokens", {
          token: credential,
          body: { role: "admin", tenants: ["*"], ttlSeconds: 600 },
        })
      ).status,
    ).toBe(403);

    const events = await trail("acme");
    const uses = events.filter((e) => e.actor === `bg:${id}`);
    expect(uses.length).toBeGreaterThanOrEqual(2);
    for (const use of uses) expect(use.severity).toBe("high");
    for (const action of ["breakglass.request", "breakglass.approve", "breakglass.activate"]) {
      expect(events.filter((e) => e.action === action && e.outcome === "success")).toEqual([
        expect.objectContaining({ severity: "high" }),
      ]);
    }
    expect(h.runtime.metrics.count("BreakGlassActive")).toBeGreaterThanOrEqual(before + 3);
    const activated = bus.received.filter((e) => e.DetailType === "Break Glass Activated");
    expect(activated).toHaveLength(1);
    expect(activated[0]?.Source).toBe("strongbox.api");
    expect(JSON.parse(activated[0]?.Detail ?? "{}")).toMatchObject({
      requestId: id,
      tenantId: "acme",
      stage: "test",
      expiresAt,
    });
    for (const body of bus.bodies) expect(body).not.toContain(credential);
    expect(JSON.stringify(events)).not.toContain(credential);
  });

  it("ends on revoke", async () => {
    const { id, credential } = await approvedAndActive();
    expect((await h.call("GET", "/v1/tenants/acme/audit", { token: credential })).status).toBe(200);
    const revoked = await step(id, "revoke", admin);
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toMatchObject({ status: "revoked" });
    expect((await h.call("GET", "/v1/tenants/acme/audit", { token: credential })).status).toBe(401);
  });

  it("ends at the deadline", async () => {
    const { credential } = await approvedAndActive(1);
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 61_000 });
    try {
      expect((await h.call("GET", "/v1/tenants/acme/audit", { token: credential })).status).toBe(401);
    } finally {
      vi.useRealTimers();
    }
  });

  it("an approval that lapses before activation cannot be activated", async () => {
    const { id } = await (await ask(1)).json();
    expect((await step(id, "approve", admin)).status).toBe(200);
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 61_000 });
    try {
      expect((await step(id, "activate", operator.token)).status).toBe(409);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("who may do what", () => {
  it("the requester cannot approve, nor can the bootstrap admin token; only the requester activates, once", async () => {
    const selfAsking = await h.runtime.tokens.issue("admin", ["*"], 3600);
    const asked = await ask(10, selfAsking.token);
    expect(asked.status).toBe(201);
    const { id } = await asked.json();
    expect((await step(id, "approve", selfAsking.token)).status).toBe(403);
    expect((await step(id, "approve", bootstrapAdmin)).status).toBe(403);
    expect((await step(id, "activate", selfAsking.token)).status).toBe(409);

    const fromOperator = await (await ask(10)).json();
    expect((await step(fromOperator.id, "approve", operator.token)).status).toBe(403);
    expect((await step(fromOperator.id, "approve", admin)).status).toBe(200);
    expect((await step(fromOperator.id, "approve", admin)).status).toBe(409);
    const otherOperator = await h.runtime.tokens.issue("operator", ["acme"], 3600);
    expect((await step(fromOperator.id, "activate", otherOperator.token)).status).toBe(403);
    expect((await step(fromOperator.id, "activate", operator.token)).status).toBe(201);
    expect((await step(fromOperator.id, "activate", operator.token)).status).toBe(409);
  });

  it("a request is reached only through its own tenant's path", async () => {
    const { id } = await (await ask(10)).json();
    expect((await step(id, "approve", admin, "other")).status).toBe(404);
  });

  it("an operator of another tenant cannot ask for this one", async () => {
    expect((await ask(10, (await h.runtime.tokens.issue("operator", ["other"], 3600)).token)).status).toBe(
      403,
    );
  });

  it("refuses more than 60 minutes, no reason, and a malformed id", async () => {
    expect((await ask(61)).status).toBe(400);
    expect((await ask(0)).status).toBe(400);
    expect(
      (await h.call("POST", base(), { token: operator.token, body: { durationMinutes: 5 } })).status,
    ).toBe(400);
    expect((await step("NOT-AN-ID", "approve", admin)).status).toBe(400);
  });

  it("a table writer cannot forge or extend a credential: an edited item authenticates nobody", async () => {
    const { id, credential } = await approvedAndActive();
    const item = await h.table.get(breakGlassKey(id));
    await h.table.put({ ...item, tenantId: "other" });
    expect((await h.call("GET", "/v1/tenants/other/audit", { token: credential })).status).toBe(401);
    await h.table.put({ ...item, expiresAt: "2999-01-01T00:00:00.000Z" });
    expect((await h.call("GET", "/v1/tenants/acme/audit", { token: credential })).status).toBe(401);
    await h.table.put(item as Record<string, unknown>);
    expect((await h.call("GET", "/v1/tenants/acme/audit", { token: credential })).status).toBe(200);
  });
});
