import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrapToken } from "../../shared/crypto/tokens.ts";
import type { AuditEvent } from "../../shared/domain/types.ts";
import { tokenKey } from "../../shared/storage/keys.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";

// The weekly access review (seed 002 §10.2): GET /v1/tokens, GET /v1/tokens/self, audited tenant
// reads, and the bootstrap token's issuance on the record.

let h: Harness;
let admin: string;

const systemTrail = async (): Promise<AuditEvent[]> =>
  (await (await h.call("GET", "/v1/audit?limit=999", { token: admin })).json()).events;

beforeAll(async () => {
  h = await startHarness();
  admin = await h.token("admin");
  for (const tenantId of ["alpha", "bravo"]) {
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId } })).status).toBe(201);
  }
});
afterAll(() => h?.close());

async function listAll(query = ""): Promise<any[]> {
  const tokens: any[] = [];
  let cursor: string | undefined;
  do {
    const sep = query === "" ? "?" : `?${query}&`;
    const response = await h.call("GET", `/v1/tokens${sep}limit=2${cursor ? `&cursor=${cursor}` : ""}`, {
      token: admin,
    });
    expect(response.status).toBe(200);
    const body = await response.json();
    tokens.push(...body.tokens);
    cursor = body.nextCursor;
  } while (cursor !== undefined);
  return tokens;
}

describe("GET /v1/tokens", () => {
  it("lists every token with its metadata and never a hash, across pages", async () => {
    const runner = await h.runtime.tokens.issue("runner", ["alpha"], 3600);
    const operator = await h.runtime.tokens.issue("operator", ["bravo"], 3600);
    const response = await h.call("GET", "/v1/tokens?limit=999", { token: admin });
    expect(response.text).not.toContain("secretHash");
    expect(response.text).not.toContain(runner.token);
    const all = await listAll();
    expect(all.map((t) => t.id)).toEqual(expect.arrayContaining([runner.id, operator.id]));
    expect(all.find((t) => t.id === runner.id)).toEqual({
      id: runner.id,
      status: "active",
      role: "runner",
      tenants: ["alpha"],
      createdAt: expect.any(String),
      expiresAt: runner.expiresAt,
    });
    for (const token of all) expect(Object.keys(token)).not.toContain("mac");
  });

  it("filters by role, by the tenant a token reaches, by expiry and by status", async () => {
    const soon = await h.runtime.tokens.issue("auditor", ["alpha"], 120);
    const later = await h.runtime.tokens.issue("auditor", ["bravo"], 7200);
    const revoked = await h.runtime.tokens.issue("runner", ["bravo"], 3600);
    expect((await h.call("DELETE", `/v1/tokens/${revoked.id}`, { token: admin })).status).toBe(204);

    const auditors = await listAll("role=auditor");
    expect(auditors.map((t) => t.id).sort()).toEqual([soon.id, later.id].sort());
    const reachAlpha = await listAll("tenant=alpha");
    expect(reachAlpha.map((t) => t.id)).toContain(soon.id);
    expect(reachAlpha.map((t) => t.id)).not.toContain(later.id);
    // Admins reach every tenant, so they are in every tenant's review.
    expect(reachAlpha.some((t) => t.role === "admin")).toBe(true);
    const before = new Date(Date.now() + 600_000).toISOString();
    const expiring = await listAll(`expiresBefore=${before}`);
    expect(expiring.map((t) => t.id)).toContain(soon.id);
    expect(expiring.map((t) => t.id)).not.toContain(later.id);
    const gone = await listAll("status=revoked");
    expect(gone.map((t) => t.id)).toEqual([revoked.id]);
    expect(gone[0]).toMatchObject({ status: "revoked", revokedAt: expect.any(String) });
  });

  it("shows a token item that fails its MAC as failed_integrity, and nothing it claims", async () => {
    const victim = await h.runtime.tokens.issue("runner", ["alpha"], 3600);
    const item = await h.table.get(tokenKey(victim.id));
    await h.table.put({ ...item, role: "admin", tenants: ["*"] });
    const listed = (await listAll()).find((t) => t.id === victim.id);
    expect(listed).toEqual({ id: victim.id, status: "failed_integrity" });
    expect((await listAll("role=admin")).map((t) => t.id)).not.toContain(victim.id);
  });

  it("is recorded in _system as token.list with its filter", async () => {
    await h.call("GET", "/v1/tokens?role=runner", { token: admin });
    const events = (await systemTrail()).filter((e) => e.action === "token.list");
    expect(events).toContainEqual(expect.objectContaining({ outcome: "success", detail: "role=runner" }));
  });

  it("refuses bad filters with 400", async () => {
    for (const query of [
      "role=root",
      "tenant=NOPE_",
      "expiresBefore=tomorrow",
      "status=lost",
      "limit=0",
      "x=1",
    ]) {
      const response = await h.call("GET", `/v1/tokens?${query}`, { token: admin });
      expect(response.status, query).toBe(400);
    }
  });
});

describe("GET /v1/tokens/self", () => {
  it("answers every role with its own token's metadata, recorded in _system", async () => {
    for (const role of ["runner", "auditor", "operator", "admin"] as const) {
      const issued = await h.runtime.tokens.issue(role, role === "admin" ? ["*"] : ["alpha"], 3600);
      const response = await h.call("GET", "/v1/tokens/self", { token: issued.token });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ id: issued.id, role, status: "active" });
      expect(response.text).not.toContain("secretHash");
      const mine = (await systemTrail()).filter((e) => e.action === "token.self" && e.actor === issued.id);
      expect(mine).toEqual([expect.objectContaining({ outcome: "success", role })]);
    }
    expect((await h.call("GET", "/v1/tokens/self")).status).toBe(401);
  });
});

describe("GET /v1/tenants/{t} is audited", () => {
  it("records a successful tenant read in the tenant's trail", async () => {
    const response = await h.call("GET", "/v1/tenants/alpha", { token: admin });
    expect(response.status).toBe(200);
    const requestId = response.headers.get("x-request-id");
    const events: AuditEvent[] = (
      await (await h.call("GET", "/v1/tenants/alpha/audit?limit=999", { token: admin })).json()
    ).events;
    expect(events.filter((e) => e.requestId === requestId)).toEqual([
      expect.objectContaining({ action: "tenant.read", outcome: "success" }),
    ]);
  });
});

describe("the bootstrap token's issuance", () => {
  it("locally: a fresh install issues and records one; a revoked one is not replaced without reissue", async () => {
    const local = await startHarness();
    try {
      const fresh = await local.runtime.tokens.ensureLocalBootstrap(undefined, 3600, false);
      expect(fresh.state).toBe("issued");
      if (fresh.state !== "issued") return;
      const again = await local.runtime.tokens.ensureLocalBootstrap(fresh.issued.id, 3600, false);
      expect(again.state).toBe("active");
      const adminToken = fresh.issued.token;
      expect(
        (await local.call("DELETE", `/v1/tokens/${fresh.issued.id}`, { token: adminToken })).status,
      ).toBe(204);
      // Revoked: neither the file's id nor a lost file gets a new token silently.
      expect(await local.runtime.tokens.ensureLocalBootstrap(fresh.issued.id, 3600, false)).toEqual({
        state: "refused",
        previous: fresh.issued.id,
      });
      expect((await local.runtime.tokens.ensureLocalBootstrap(undefined, 3600, false)).state).toBe("refused");
      const reissued = await local.runtime.tokens.ensureLocalBootstrap(undefined, 3600, true);
      expect(reissued.state).toBe("reissued");
      if (reissued.state !== "reissued") return;
      const events: AuditEvent[] = (
        await (await local.call("GET", "/v1/audit?limit=999", { token: reissued.issued.token })).json()
      ).events;
      const issuances = events.filter((e) => e.action === "token.create" && e.outcome === "success");
      expect(issuances.map((e) => e.detail)).toEqual(
        expect.arrayContaining([
          `bootstrap admin token for a fresh install: issued token ${fresh.issued.id} with role admin for *`,
          `bootstrap admin token reissued on request; previous ${fresh.issued.id}: issued token ${reissued.issued.id} with role admin for *`,
        ]),
      );
      for (const event of issuances) expect(event.role).toBe("system");
      expect(JSON.stringify(events)).not.toContain(reissued.issued.token);
    } finally {
      await local.close();
    }
  });

  it("on AWS: the token made from the secret is recorded when it is first issued, once", async () => {
    const minted = bootstrapToken("ab".repeat(32));
    expect(minted).toBeDefined();
    if (minted === undefined) return;
    expect(await h.runtime.tokens.ensureBootstrap(minted, 3600)).toBe("issued");
    expect(await h.runtime.tokens.ensureBootstrap(minted, 3600)).toBe("active");
    const issuances = (await systemTrail()).filter(
      (e) => e.action === "token.create" && e.outcome === "success" && e.detail?.includes(minted.tokenId),
    );
    expect(issuances).toHaveLength(1);
    expect(issuances[0]?.detail).toContain("bootstrap admin token from its secret");
  });
});
