import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { AuditEvent } from "../../shared/domain/types.ts";
import { wrapKey } from "../../shared/storage/keys.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";

// Response wrapping (seed 002 §3.1, Vault's semantics): wrapTtlSeconds on a read or a token creation,
// POST /v1/unwrap exactly once, POST /v1/unwrap/lookup without using it.

const VALUE = "WRAP-CANARY-value-3f9a";
const REASON = { "x-audit-reason": "wrapping test" };
let h: Harness;
let admin: string;
let adminId: string;

const wrapRead = async (name = "db", ttl = 300) => {
  const response = await h.call("GET", `/v1/tenants/acme/secrets/${name}?wrapTtlSeconds=${ttl}`, {
    token: admin,
    headers: REASON,
  });
  expect(response.status).toBe(200);
  expect(response.text).not.toContain(VALUE);
  return (await response.json()).wrap as { token: string; id: string; expiresAt: string };
};
const unwrap = (token: string) => h.call("POST", "/v1/unwrap", { body: { token } });
const lookup = (token: string) => h.call("POST", "/v1/unwrap/lookup", { body: { token } });
const trail = async (scope: string): Promise<AuditEvent[]> =>
  (
    await (
      await h.call(
        "GET",
        scope === "_system" ? "/v1/audit?limit=999" : `/v1/tenants/${scope}/audit?limit=999`,
        {
          token: admin,
        },
      )
    ).json()
  ).events;

beforeAll(async () => {
  h = await startHarness({ env: { AUDIT_DENIAL_WINDOW_SECONDS: "0" } });
  const issued = await h.runtime.tokens.issue("admin", ["*"], 3600);
  admin = issued.token;
  adminId = issued.id;
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } })).status).toBe(
    201,
  );
  for (const name of ["db", "other"]) {
    const put = await h.call("PUT", `/v1/tenants/acme/secrets/${name}`, {
      token: admin,
      body: { value: VALUE },
    });
    expect(put.status).toBe(200);
  }
});
afterAll(() => h?.close());

describe("a wrapped read", () => {
  it("answers a wrapping token; lookup shows creator, creation and expiry without using it; unwrap gives the value once", async () => {
    const wrap = await wrapRead();
    expect(wrap.token).toMatch(/^sbw_[a-z2-7]{26}_[0-9a-f]{64}$/);
    for (let i = 0; i < 2; i += 1) {
      const looked = await lookup(wrap.token);
      expect(looked.status).toBe(200);
      expect(await looked.json()).toEqual({
        id: wrap.id,
        kind: "secret.read",
        creator: adminId,
        createdAt: expect.any(String),
        expiresAt: wrap.expiresAt,
      });
    }
    const first = await unwrap(wrap.token);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({
      kind: "secret.read",
      data: { name: "db", version: 1, value: VALUE, createdAt: expect.any(String) },
    });
    const second = await unwrap(wrap.token);
    expect(second.status).toBe(410);
    expect((await second.json()).error.code).toBe("wrapping_token_used");
    expect((await lookup(wrap.token)).status).toBe(410);

    const events = await trail("acme");
    expect(events).toContainEqual(
      expect.objectContaining({ action: "secret.read", outcome: "success", detail: `wrapped as ${wrap.id}` }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({ action: "wrap.unwrap", outcome: "success", actor: `wrap:${wrap.id}` }),
    );
    const refused = events.filter((e) => e.action === "wrap.unwrap" && e.outcome === "failure");
    expect(refused).toEqual([
      expect.objectContaining({ detail: "wrapping_token_used", severity: "high", actor: `wrap:${wrap.id}` }),
    ]);
    expect(JSON.stringify(events)).not.toContain(VALUE);
    expect(JSON.stringify(events)).not.toContain(wrap.token);
  });

  it("keeps the payload sealed at rest, and removes it once unwrapped", async () => {
    const wrap = await wrapRead("other");
    const stored = await h.table.get(wrapKey(wrap.id));
    expect(stored?.envelope).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(JSON.stringify(stored)).toString()).not.toContain(VALUE);
    expect(Buffer.from(stored?.envelope as Uint8Array).toString("latin1")).not.toContain(VALUE);
    expect(stored?.secretHash).toBeInstanceOf(Uint8Array);
    expect((await unwrap(wrap.token)).status).toBe(200);
    const after = await h.table.get(wrapKey(wrap.id));
    expect(after?.envelope).toBeUndefined();
    expect(after?.usedAt).toEqual(expect.any(String));
  });

  it("of concurrent unwraps exactly one gets the value, every other one 410", async () => {
    const wrap = await wrapRead();
    const responses = await Promise.all(Array.from({ length: 12 }, () => unwrap(wrap.token)));
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 410)).toHaveLength(11);
    const [winner] = responses.filter((r) => r.status === 200);
    expect(winner).toBeDefined();
    if (winner !== undefined) expect((await winner.json()).data.value).toBe(VALUE);
  });

  it("an expired wrapping token is 410 wrapping_token_expired at high severity, and its payload is gone", async () => {
    const wrap = await wrapRead("db", 1);
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 5_000 });
    let response: Awaited<ReturnType<typeof unwrap>>;
    try {
      response = await unwrap(wrap.token);
    } finally {
      vi.useRealTimers();
    }
    expect(response.status).toBe(410);
    expect((await response.json()).error.code).toBe("wrapping_token_expired");
    expect((await h.table.get(wrapKey(wrap.id)))?.envelope).toBeUndefined();
    const refused = (await trail("acme")).filter(
      (e) => e.action === "wrap.unwrap" && e.detail === "wrapping_token_expired",
    );
    expect(refused).toEqual([expect.objectContaining({ severity: "high" })]);
  });

  it("an unknown wrapping token, or a real id with the wrong secret half, is 404; a malformed one 400", async () => {
    const unknown = `sbw_${"a".repeat(26)}_${"0".repeat(64)}`;
    expect((await unwrap(unknown)).status).toBe(404);
    const wrap = await wrapRead();
    const wrongSecret = `sbw_${wrap.id}_${"f".repeat(64)}`;
    expect((await unwrap(wrongSecret)).status).toBe(404);
    expect((await lookup(wrongSecret)).status).toBe(404);
    expect((await unwrap("sbx_not-a-wrapping-token")).status).toBe(400);
    // The real one is untouched by the failed attempts.
    expect((await unwrap(wrap.token)).status).toBe(200);
  });

  it("a table writer cannot extend or re-aim a wrap: an edited item is refused as unknown", async () => {
    const wrap = await wrapRead();
    const item = await h.table.get(wrapKey(wrap.id));
    const before = h.runtime.metrics.count("IntegrityFailures");
    await h.table.put({ ...item, expiresAt: "2999-01-01T00:00:00.000Z" });
    expect((await unwrap(wrap.token)).status).toBe(404);
    await h.table.put({ ...item, scope: "_system" });
    expect((await lookup(wrap.token)).status).toBe(404);
    expect(h.runtime.metrics.count("IntegrityFailures")).toBe(before + 2);
    // Put back as made, it unwraps.
    await h.table.put(item as Record<string, unknown>);
    expect((await unwrap(wrap.token)).status).toBe(200);
  });

  it("a sealed tenant's wrapped value is refused (423) and not used up; after the unseal it unwraps", async () => {
    const wrap = await wrapRead();
    const seal = await h.call("POST", "/v1/tenants/acme/seal", { token: admin, body: { reason: "drill" } });
    expect(seal.status).toBe(200);
    expect((await unwrap(wrap.token)).status).toBe(423);
    expect(
      (await h.call("POST", "/v1/tenants/acme/unseal", { token: admin, body: { reason: "ok" } })).status,
    ).toBe(200);
    expect((await unwrap(wrap.token)).status).toBe(200);
  });

  it("refuses a wrapTtlSeconds out of range", async () => {
    for (const ttl of ["0", "-1", "86401", "abc", "1.5"]) {
      const response = await h.call("GET", `/v1/tenants/acme/secrets/db?wrapTtlSeconds=${ttl}`, {
        token: admin,
        headers: REASON,
      });
      expect(response.status, ttl).toBe(400);
    }
  });
});

describe("a wrapped token creation", () => {
  it("answers 201 with a wrapping token; the unwrapped token works as a bearer token", async () => {
    const created = await h.call("POST", "/v1/tokens", {
      token: admin,
      body: { role: "runner", tenants: ["acme"], ttlSeconds: 600, wrapTtlSeconds: 120 },
    });
    expect(created.status).toBe(201);
    const { wrap } = await created.json();
    expect(created.text).not.toContain("sbx_");
    const opened = await unwrap(wrap.token);
    expect(opened.status).toBe(200);
    const { kind, data } = await opened.json();
    expect(kind).toBe("token.create");
    expect(data.token).toMatch(/^sbx_/);
    const read = await h.call("GET", "/v1/tenants/acme/secrets/db", { token: data.token, headers: REASON });
    expect(read.status).toBe(200);
    const system = await trail("_system");
    expect(system).toContainEqual(
      expect.objectContaining({
        action: "token.create",
        outcome: "success",
        detail: `issued token ${data.id} with role runner for acme, wrapped as ${wrap.id}`,
      }),
    );
    expect(JSON.stringify(system)).not.toContain(data.token);
    expect((await unwrap(wrap.token)).status).toBe(410);
  });
});
