import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { MAX_KNOWN_SCOPES } from "../../shared/services/audit/chain-writer.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";

/*
 * The security review's denial findings, each with the request that showed it: a revoked token's
 * denials folded into `anonymous`, and unauthenticated requests naming invented tenants opening a
 * chain each.
 */

let h: Harness;
let admin: string;
const TENANT = "denials";

beforeAll(async () => {
  h = await startHarness();
  admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } })).status).toBe(
    201,
  );
});
afterAll(async () => {
  await h.close();
});

const read = (authorization: string, tenant = TENANT) =>
  h.call("GET", `/v1/tenants/${tenant}/secrets/db-password`, {
    headers: { authorization, "x-audit-reason": "test" },
  });

async function denied(scope: string): Promise<{ actor: string; detail?: string; count?: number }[]> {
  await h.runtime.denials.flush();
  const path = scope === "_system" ? "/v1/audit" : `/v1/tenants/${scope}/audit`;
  const response = await h.call("GET", `${path}?outcome=denied&limit=999`, { token: admin });
  expect(response.status).toBe(200);
  return (await response.json()).events;
}

const idOf = (token: string) => /^sbx_([a-z2-7]{26})_/.exec(token)?.[1] as string;

describe("a presented token id that exists", () => {
  it("junk, then a revoked token, then junk: the revoked token's id is on the record", async () => {
    const revoked = await h.token("runner", [TENANT]);
    expect((await h.call("DELETE", `/v1/tokens/${idOf(revoked)}`, { token: admin })).status).toBeLessThan(
      300,
    );
    expect((await read("Bearer junk")).status).toBe(401);
    expect((await read(`Bearer ${revoked}`)).status).toBe(401);
    expect((await read("Bearer junk")).status).toBe(401);
    const records = await denied(TENANT);
    expect(records.filter((r) => r.actor === idOf(revoked))).toEqual([
      expect.objectContaining({ detail: "revoked_token" }),
    ]);
  });

  it("an expired token and a token with the wrong secret are each recorded under their id", async () => {
    const expiring = (await h.runtime.tokens.issue("runner", [TENANT], 1)).token;
    const guessed = await h.token("runner", [TENANT]);
    const wrongSecret = guessed.replace(
      /_[^_]+$/,
      `_${"a".repeat(guessed.length - guessed.lastIndexOf("_") - 1)}`,
    );
    vi.spyOn(Date, "now").mockReturnValue(Date.now() + 5_000);
    try {
      expect((await read(`Bearer ${expiring}`)).status).toBe(401);
    } finally {
      vi.restoreAllMocks();
    }
    expect((await read(`Bearer ${wrongSecret}`)).status).toBe(401);
    const records = await denied(TENANT);
    expect(records.filter((r) => r.actor === idOf(expiring)).map((r) => r.detail)).toEqual(["expired_token"]);
    expect(records.filter((r) => r.actor === idOf(guessed)).map((r) => r.detail)).toEqual(["unknown_token"]);
  });
});

describe("a denial naming a tenant that does not exist", () => {
  it("goes to _system, naming the tenant, and opens no chain of its own", async () => {
    const invented = Array.from({ length: 5 }, (_, n) => `invented-${n}-${Date.now()}`);
    for (const tenant of invented) expect((await read("Bearer junk", tenant)).status).toBe(401);
    const runner = await h.token("runner", [TENANT]);
    expect((await read(`Bearer ${runner}`, invented[0])).status).toBe(403);
    const scopes = await h.runtime.chainVerifier.scopes();
    for (const tenant of invented) expect(scopes).not.toContain(tenant);
    const system = await denied("_system");
    expect(system.some((r) => r.detail?.includes(`names tenant ${invented[0]}, which does not exist`))).toBe(
      true,
    );
    expect(
      system.some((r) => r.actor === idOf(runner) && r.detail?.includes(`names tenant ${invented[0]}`)),
    ).toBe(true);
  });
});

describe("in-memory maps keyed by caller input", () => {
  it("the chain heads an instance keeps are bounded", async () => {
    const writer = h.runtime.chainWriter;
    await Promise.all(
      Array.from({ length: MAX_KNOWN_SCOPES + 50 }, (_, n) =>
        writer.append({
          tenantId: `bound-${n}`,
          action: "secret.read",
          outcome: "denied",
          actor: "anonymous",
          role: "anonymous",
          requestId: `bound-${n}`,
          time: new Date().toISOString(),
        }),
      ),
    );
    expect(writer.knownChainCount()).toBeLessThanOrEqual(MAX_KNOWN_SCOPES);
    expect(writer.movedScopes().length).toBeLessThanOrEqual(MAX_KNOWN_SCOPES);
  });
});
