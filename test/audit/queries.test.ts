import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainedAuditRecord } from "../../shared/domain/audit-chain.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";

let h: Harness;
let admin: string;
let operator: { token: string; id: string };
let runner: { token: string; id: string };
const reason = { "x-audit-reason": "queries test" };

async function events(path: string): Promise<ChainedAuditRecord[]> {
  const response = await h.call("GET", path, { token: admin });
  expect(response.status).toBe(200);
  return (await response.json()).events;
}

beforeAll(async () => {
  h = await startHarness();
  admin = await h.token("admin");
  operator = await h.runtime.tokens.issue("operator", ["acme"], 3600);
  runner = await h.runtime.tokens.issue("runner", ["acme"], 3600);
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } })).status).toBe(
    201,
  );
  for (const name of ["db-password", "api-key", "db-password"]) {
    const put = await h.call("PUT", `/v1/tenants/acme/secrets/${name}`, {
      token: operator.token,
      body: { value: `value-of-${name}` },
    });
    expect(put.status).toBe(200);
  }
  for (let i = 0; i < 3; i += 1) {
    const read = await h.call("GET", "/v1/tenants/acme/secrets/db-password", {
      token: runner.token,
      headers: reason,
    });
    expect(read.status).toBe(200);
  }
});
afterAll(() => h.close());

describe("audit queries", () => {
  it("filter by secret: only that secret's records, newest first", async () => {
    const found = await events("/v1/tenants/acme/audit?secret=api-key&limit=999");
    expect(found.map((e) => [e.action, e.outcome])).toEqual([
      ["secret.write", "success"],
      ["secret.write", "attempt"],
    ]);
  });

  it("filter by actor, action and outcome together", async () => {
    const found = await events(
      `/v1/tenants/acme/audit?actor=${runner.id}&action=secret.read&outcome=success&limit=999`,
    );
    expect(found).toHaveLength(3);
    for (const event of found) expect(event).toMatchObject({ actor: runner.id, secretName: "db-password" });
    const sequences = found.map((e) => e.sequence);
    expect(sequences).toEqual([...sequences].sort((a, b) => b - a));
  });

  it("filter by time range, bounds inclusive, at second precision as well as millisecond", async () => {
    const all = await events("/v1/tenants/acme/audit?action=secret.read&limit=999");
    const middle = all[1] as ChainedAuditRecord;
    const exact = await events(
      `/v1/tenants/acme/audit?action=secret.read&from=${middle.time}&to=${middle.time}&limit=999`,
    );
    expect(exact.map((e) => e.sequence)).toEqual([middle.sequence]);
    const future = await events("/v1/tenants/acme/audit?from=2999-01-01T00:00:00Z");
    expect(future).toEqual([]);
    const whole = await events("/v1/tenants/acme/audit?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z");
    expect(whole.length).toBeGreaterThan(8);
  });

  it("paginates a filtered listing without gaps or repeats", async () => {
    const all = await events("/v1/tenants/acme/audit?outcome=success&limit=999");
    const paged: ChainedAuditRecord[] = [];
    let cursor: string | undefined;
    do {
      const response = await h.call(
        "GET",
        `/v1/tenants/acme/audit?outcome=success&limit=2${cursor === undefined ? "" : `&cursor=${cursor}`}`,
        { token: admin },
      );
      const body = await response.json();
      expect(body.events.length).toBeLessThanOrEqual(2);
      paged.push(...body.events);
      cursor = body.nextCursor;
    } while (cursor !== undefined);
    // Listings are themselves audited (audit.read successes), so compare the records both saw.
    const seen = new Set(paged.map((e) => e.sequence));
    for (const event of all) expect(seen.has(event.sequence)).toBe(true);
    expect(new Set(paged.map((e) => e.sequence)).size).toBe(paged.length);
  });

  it.each([
    ["an unknown action", "action=secret.steal"],
    ["an unknown outcome", "outcome=maybe"],
    ["a malformed time", "from=yesterday"],
    ["a reversed range", "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z"],
    ["an unknown filter", "tenant=other"],
  ])("refuses %s with 400", async (_label, query) => {
    const response = await h.call("GET", `/v1/tenants/acme/audit?${query}`, { token: admin });
    expect(response.status).toBe(400);
    expect((await response.json()).error.code).toBe("invalid_request");
  });
});

describe("export as JSON lines", () => {
  it("answers every matching record oldest first, one JSON object per line, with its chain fields", async () => {
    const response = await h.call("GET", "/v1/tenants/acme/audit/export?secret=db-password", {
      token: admin,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/x-ndjson");
    expect(response.text.endsWith("\n")).toBe(true);
    const all = response.text
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    // The last line is the trailer that tells a complete export from a truncated one.
    const lines = all.slice(0, -1);
    expect(all.at(-1)).toEqual({
      end: true,
      records: lines.length,
      lastSequence: lines.at(-1).sequence,
      lastHash: lines.at(-1).hash,
    });
    expect(lines.length).toBe(4 + 3);
    for (const line of lines) {
      expect(line).toMatchObject({ tenantId: "acme", secretName: "db-password" });
      expect(line.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(line.mac).toMatch(/^[0-9a-f]{64}$/);
      expect(line).not.toHaveProperty("value");
    }
    expect(lines.map((l) => l.sequence)).toEqual([...lines.map((l) => l.sequence)].sort((a, b) => a - b));
    expect(response.text).not.toContain("value-of-db-password");
  });

  it("the export itself is on the record, with its filter", async () => {
    const found = await events("/v1/tenants/acme/audit?action=audit.export&limit=999");
    expect(found[0]).toMatchObject({
      outcome: "success",
      detail: expect.stringMatching(/^secretName=db-password records=7 lastSequence=\d+$/),
    });
  });
});

describe("repeated denials", () => {
  it("by one actor within the window become one full record plus one counted record in the chain", async () => {
    const before = (await h.runtime.chainVerifier.verify("acme")).verifiedThrough;
    const deniedBefore = h.runtime.metrics.count("AuthDenied");
    for (let i = 0; i < 25; i += 1) {
      const response = await h.call("PUT", "/v1/tenants/acme/secrets/db-password", {
        token: runner.token,
        body: { value: "guess" },
      });
      expect(response.status).toBe(403);
    }
    // Every denial is still counted in the metric.
    expect(h.runtime.metrics.count("AuthDenied")).toBe(deniedBefore + 25);
    await h.runtime.denials.flush();
    const chain = await h.runtime.chainVerifier.verify("acme");
    expect(chain.intact).toBe(true);
    const denied = await events(`/v1/tenants/acme/audit?actor=${runner.id}&outcome=denied&limit=999`);
    expect(denied).toHaveLength(2);
    expect(denied[1]).toMatchObject({ action: "secret.write", role: "runner" });
    expect(denied[1]).not.toHaveProperty("count");
    expect(denied[0]).toMatchObject({ action: "secret.write", count: 24 });
    expect(denied[0]?.detail).toMatch(/^24 further denials from .* to .*/);
    // Two records for 25 denials, plus the audit reads above.
    expect(chain.verifiedThrough - before).toBeLessThan(6);
  });

  it("unauthenticated guesses with ever-changing token ids collapse as one anonymous actor", async () => {
    // Well-formed tokens, each claiming a different id that does not exist.
    const guess = (i: number) => `Bearer sbx_${"a".repeat(25)}${"bcdefghijk"[i]}_${"0".repeat(64)}`;
    for (let i = 0; i < 10; i += 1) {
      const response = await h.call("GET", "/v1/tenants/acme/secrets/db-password", {
        headers: { ...reason, authorization: guess(i) },
      });
      expect(response.status).toBe(401);
    }
    await h.runtime.denials.flush();
    const denied = (await events("/v1/tenants/acme/audit?outcome=denied&limit=999")).filter(
      (e) => e.role === "anonymous",
    );
    expect(denied.map((e) => e.count ?? 1)).toEqual([9, 1]);
    expect(denied[1]?.actor).toBe(`${"a".repeat(25)}b`);
    expect(denied[0]?.actor).toBe(`${"a".repeat(25)}k`);
  });

  it("separate actors are not collapsed together", async () => {
    const other = await h.runtime.tokens.issue("runner", ["acme"], 3600);
    const response = await h.call("DELETE", "/v1/tenants/acme/secrets/api-key", { token: other.token });
    expect(response.status).toBe(403);
    const denied = await events(`/v1/tenants/acme/audit?actor=${other.id}&outcome=denied`);
    expect(denied).toHaveLength(1);
    expect(denied[0]?.requestId).toBe(response.headers.get("x-request-id"));
  });
});
