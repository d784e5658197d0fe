import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { auditAppend, type FaultRule, secretItemWrite } from "../../testing/fault-proxy.ts";
import {
  expectChainIntact,
  expectHistoryIntact,
  type FaultStack,
  SDK_ENV,
  startFaultStack,
  WriteLedger,
} from "../../testing/fault-stack.ts";

// The ambiguous commit: dynalite applies a write and answers, and the proxy then destroys the
// connection, so the SDK retries a write that has already landed. Its conditional retry then fails
// against the service's own commit. The caller must get the outcome of what was committed.
const DROP = { kind: "drop-after-commit" } as const;
const TENANT = "ambiguous";
const REASON = { "x-audit-reason": "ambiguous commit test" };

let s: FaultStack;
let admin: string;
const ledger = new WriteLedger();

beforeAll(async () => {
  for (const [key, value] of Object.entries(SDK_ENV)) vi.stubEnv(key, value);
  s = await startFaultStack({ env: { AWS_REQUEST_TIMEOUT_MS: "500" } });
  admin = await s.harness.token("admin");
  const created = await s.harness.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } });
  expect(created.status).toBe(201);
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await s?.close();
});

/** Drops the connection after the n-th (from 0) matching write has been applied. */
const dropOnce = (match: NonNullable<FaultRule["match"]>, after = 0) =>
  s.dynamoProxy.inject({ match, fault: DROP, count: 1, after });

const put = async (name: string, body: { value: string; cas?: number }) => {
  const response = await s.harness.call("PUT", `/v1/tenants/${TENANT}/secrets/${name}`, {
    token: admin,
    body,
  });
  await ledger.note(response, TENANT, name, body.value);
  return response;
};

/** A secret write is an archive copy (not for a new secret) and then the head's conditional put. */
const HEAD_WRITE_OF_AN_EXISTING_SECRET = 1;

describe("a secret write whose head commit's answer is lost", () => {
  it("a plain write answers the version it committed, and allocates no other", async () => {
    expect((await put("plain", { value: "p1" })).status).toBe(200);
    const dropped = dropOnce(secretItemWrite, HEAD_WRITE_OF_AN_EXISTING_SECRET);
    const response = await put("plain", { value: "p2" });
    expect(dropped.fired).toBe(1);
    expect(response.status, response.text).toBe(200);
    expect(await response.json()).toEqual({ name: "plain", version: 2 });
    expect(await expectHistoryIntact(s.harness, admin, TENANT, "plain")).toBe(2);
  });

  it("a cas write succeeds: the head it finds is its own commit, not another writer's", async () => {
    expect((await put("cas", { value: "c1", cas: 0 })).status).toBe(200);
    const dropped = dropOnce(secretItemWrite, HEAD_WRITE_OF_AN_EXISTING_SECRET);
    const response = await put("cas", { value: "c2", cas: 1 });
    expect(dropped.fired).toBe(1);
    expect(response.status, response.text).toBe(200);
    expect(await response.json()).toEqual({ name: "cas", version: 2 });
    // A write that really lost its race is still refused.
    const stale = await put("cas", { value: "c3", cas: 1 });
    expect(stale.status).toBe(409);
  });

  it("creating a secret (cas 0) succeeds though its first head put's answer was lost", async () => {
    const dropped = dropOnce(secretItemWrite);
    const response = await put("created", { value: "n1", cas: 0 });
    expect(dropped.fired).toBe(1);
    expect(response.status, response.text).toBe(200);
    expect(await response.json()).toEqual({ name: "created", version: 1 });
  });
});

describe("an audit append whose answer is lost", () => {
  it.each([0, 1])("append %i of a write: the request succeeds and the chain verifies", async (after) => {
    const before = await expectChainIntact(s.harness, admin, TENANT);
    const dropped = s.dynamoProxy.inject({ match: auditAppend, fault: DROP, count: 1, after });
    const response = await put("audited", { value: `a${after}` });
    expect(dropped.fired).toBe(1);
    expect(response.status, response.text).toBe(200);
    // The verify call above appended its own record; the write appended two more, and none twice.
    expect(await expectChainIntact(s.harness, admin, TENANT)).toBe(before + 3);
  });
});

describe("the tenant and the rotation steps", () => {
  it("tenant creation, promote, rollback and DEK rotation each answer as if nothing was lost", async () => {
    const nonAudit = (call: Parameters<NonNullable<FaultRule["match"]>>[0]) =>
      (call.operation === "PutItem" || call.operation === "UpdateItem") && !auditAppend(call);
    let dropped = dropOnce(nonAudit);
    const tenant = await s.harness.call("POST", "/v1/tenants", {
      token: admin,
      body: { tenantId: "second" },
    });
    expect(dropped.fired).toBe(1);
    expect(tenant.status, tenant.text).toBe(201);

    const pending = await s.harness.call("PUT", `/v1/tenants/${TENANT}/secrets/plain`, {
      token: admin,
      body: { value: "p3", stage: "pending" },
    });
    expect(pending.status, pending.text).toBe(200);
    const pendingVersion = (await pending.json()).version;
    await ledger.note(pending, TENANT, "plain", "p3");
    dropped = dropOnce(secretItemWrite, 0);
    const promoted = await s.harness.call("POST", `/v1/tenants/${TENANT}/secrets/plain/promote`, {
      token: admin,
      body: {},
    });
    expect(dropped.fired).toBe(1);
    expect(promoted.status, promoted.text).toBe(200);
    expect(await promoted.json()).toMatchObject({ current: pendingVersion });

    dropped = dropOnce(secretItemWrite, 0);
    const rolledBack = await s.harness.call("POST", `/v1/tenants/${TENANT}/secrets/plain/rollback`, {
      token: admin,
      body: { version: pendingVersion - 1 },
    });
    expect(dropped.fired).toBe(1);
    expect(rolledBack.status, rolledBack.text).toBe(200);
    expect(await rolledBack.json()).toMatchObject({ current: pendingVersion - 1 });

    dropped = dropOnce(nonAudit);
    const rotated = await s.harness.call("POST", `/v1/tenants/${TENANT}/rotate-dek`, { token: admin });
    expect(dropped.fired).toBe(1);
    expect(rotated.status, rotated.text).toBe(200);
    expect(await rotated.json()).toEqual({ tenantId: TENANT, dekVersion: 2 });
  });

  it("afterwards every acknowledged write reads back at its version, and both chains verify", async () => {
    s.dynamoProxy.clear();
    await ledger.expectAllReadBack(s.harness, admin);
    for (const name of ["plain", "cas", "created", "audited"]) {
      await expectHistoryIntact(s.harness, admin, TENANT, name);
    }
    await expectChainIntact(s.harness, admin, TENANT);
    const system = await s.harness.call("GET", "/v1/audit/verify", { token: admin });
    expect(await system.json()).toMatchObject({ intact: true });
    expect(s.harness.runtime.metrics.count("AuditWriteFailures")).toBe(0);
    const read = await s.harness.call("GET", `/v1/tenants/${TENANT}/secrets/plain`, {
      token: admin,
      headers: REASON,
    });
    expect(read.status).toBe(200);
  });
});
