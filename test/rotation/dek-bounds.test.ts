import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainKeys } from "../../shared/crypto/chain-keys.ts";
import type { Keyring } from "../../shared/crypto/keyring.ts";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { DAY_MS } from "../../shared/domain/time.ts";
import { getRawItem, tenantKey } from "../../testing/faults.ts";
import { type Harness, randomKek, startHarness, startStore } from "../../testing/harness.ts";

/*
 * The bounds on DEK use: the minimum interval between rotations on request, the rotation period the
 * scheduled runner keeps, and the seal counter that forces a rotation long before AES-GCM's random-IV
 * limit. Time passing is stood in for by moving `dekRotatedAt` back in the table.
 */

const REASON = { "x-audit-reason": "dek bounds test" };

/** A real local keyring whose GenerateDataKey calls are counted: what each rotation costs on KMS. */
function countingKeyring(): { keyring: Keyring; chainKeys: ChainKeys; generated: () => number } {
  const inner = new LocalKeyring({ active: randomKek(), previous: [] });
  let generated = 0;
  const keyring: Keyring = {
    kind: inner.kind,
    activeKekId: inner.activeKekId,
    kekIds: inner.kekIds,
    generateDataKey: (context) => {
      generated += 1;
      return inner.generateDataKey(context);
    },
    unwrap: (wrapped, context) => inner.unwrap(wrapped, context),
    rewrap: (wrapped, context) => inner.rewrap(wrapped, context),
    probe: () => inner.probe(),
  };
  return { keyring, chainKeys: inner.chainKeys(), generated: () => generated };
}

async function backdateDek(h: Harness, tenantId: string, msAgo: number) {
  await h.table.doc.send(
    new UpdateCommand({
      TableName: h.table.name,
      Key: tenantKey(tenantId),
      UpdateExpression: "SET dekRotatedAt = :at",
      ExpressionAttributeValues: { ":at": new Date(Date.now() - msAgo).toISOString() },
    }),
  );
}

describe("rotate-dek has a per-tenant minimum interval", () => {
  let store: Awaited<ReturnType<typeof startStore>>;
  let a: Harness;
  let b: Harness;
  let admin: string;
  let counting: ReturnType<typeof countingKeyring>;
  const env = { DEK_ROTATE_MIN_INTERVAL_SECONDS: "600" };

  beforeAll(async () => {
    store = await startStore();
    counting = countingKeyring();
    // Two runtimes on one table: two Lambda instances, which share only the tenant item.
    a = await startHarness({ store, keyring: counting.keyring, chainKeys: counting.chainKeys, env });
    b = await startHarness({ store, keyring: counting.keyring, chainKeys: counting.chainKeys, env });
    admin = await a.token("admin");
    expect((await a.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "rl" } })).status).toBe(
      201,
    );
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await store?.dynamo.close();
  });

  it("refuses a second rotation within the interval with 429 and Retry-After, on any instance, at no KMS cost", async () => {
    const first = await a.call("POST", "/v1/tenants/rl/rotate-dek", { token: admin });
    expect(await first.json()).toEqual({ tenantId: "rl", dekVersion: 2 });
    const generated = counting.generated();
    for (const instance of [a, b]) {
      const again = await instance.call("POST", "/v1/tenants/rl/rotate-dek", { token: admin });
      expect(again.status).toBe(429);
      expect((await again.json()).error.code).toBe("rate_limited");
      const retryAfter = Number(again.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThan(590);
      expect(retryAfter).toBeLessThanOrEqual(600);
    }
    expect(counting.generated()).toBe(generated);
    const status = await (await b.call("GET", "/v1/tenants/rl/rotation", { token: admin })).json();
    expect(status.currentDekVersion).toBe(2);
    expect(status.sweep).toMatchObject({ targetDekVersion: 2 });
  });

  it("concurrent rotations: one rotates, the rest get 429", async () => {
    await backdateDek(a, "rl", 601_000);
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        (i % 2 === 0 ? a : b).call("POST", "/v1/tenants/rl/rotate-dek", { token: admin }),
      ),
    );
    expect(answers.map((r) => r.status).sort()).toEqual([200, 429, 429, 429, 429, 429]);
    const status = await (
      await a.call("GET", "/v1/tenants/rl/rotation", { token: admin, headers: REASON })
    ).json();
    expect(status.currentDekVersion).toBe(3);
  });
});

describe("the scheduled runner keeps each DEK within its period and its seal count", () => {
  let h: Harness;
  let admin: string;
  const put = (tenant: string, name: string, value: string) =>
    h.call("PUT", `/v1/tenants/${tenant}/secrets/${name}`, { token: admin, body: { value } });
  const read = async (tenant: string, name: string) =>
    (await h.call("GET", `/v1/tenants/${tenant}/secrets/${name}`, { token: admin, headers: REASON })).json();
  const runNow = async () =>
    (await h.call("POST", "/v1/rotation/run", { token: admin, headers: REASON })).json();
  const dekVersion = async (tenant: string) =>
    (await (await h.call("GET", `/v1/tenants/${tenant}`, { token: admin })).json()).currentDekVersion;
  const seals = async (tenant: string) => (await getRawItem(h.table, tenantKey(tenant))).dekSeals;

  beforeAll(async () => {
    h = await startHarness({
      env: { DEK_ROTATION_PERIOD_DAYS: "90", DEK_SEAL_ROTATE_THRESHOLD: "5", DEK_SEAL_LIMIT: "8" },
    });
    admin = await h.token("admin");
    for (const tenantId of ["aged", "young", "busy"]) {
      expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId } })).status).toBe(201);
    }
  });
  afterAll(() => h?.close());

  it("rotates a DEK older than the rotation period, and only that one", async () => {
    expect((await put("aged", "s", "aged-value")).status).toBe(200);
    expect((await put("young", "s", "young-value")).status).toBe(200);
    await backdateDek(h, "aged", 91 * DAY_MS);
    await backdateDek(h, "young", 89 * DAY_MS);
    const run = await runNow();
    expect(run.deks).toMatchObject({ rotated: 1, failed: 0, scanComplete: true });
    expect(await dekVersion("aged")).toBe(2);
    expect(await dekVersion("young")).toBe(1);
    expect(await read("aged", "s")).toMatchObject({ value: "aged-value" });
    const audit = (await (await h.call("GET", "/v1/tenants/aged/audit?limit=999", { token: admin })).json())
      .events;
    expect(audit.filter((e: { action: string }) => e.action === "tenant.rotate-dek")).toContainEqual(
      expect.objectContaining({ outcome: "success", role: "system" }),
    );
    // Its period starts again: the next run leaves it alone.
    expect((await runNow()).deks).toMatchObject({ rotated: 0, failed: 0 });
    expect(await dekVersion("aged")).toBe(2);
  });

  it("counts every seal on the tenant item and none for a read; past the threshold the runner rotates", async () => {
    for (let i = 1; i <= 4; i += 1) expect((await put("busy", `s${i}`, `v${i}`)).status).toBe(200);
    expect(await seals("busy")).toBe(4);
    expect(await read("busy", "s1")).toMatchObject({ value: "v1" });
    expect(await seals("busy")).toBe(4);
    expect((await runNow()).deks).toMatchObject({ rotated: 0 });
    expect(await dekVersion("busy")).toBe(1);

    expect((await put("busy", "s5", "v5")).status).toBe(200);
    expect(await seals("busy")).toBe(5);
    const run = await runNow();
    expect(run.deks).toMatchObject({ rotated: 1, failed: 0 });
    expect(await dekVersion("busy")).toBe(2);
    // The count starts again under the new DEK; the sweep's re-seals count under it too.
    expect(await seals("busy")).toBeLessThan(5);
    for (let i = 1; i <= 5; i += 1) expect(await read("busy", `s${i}`)).toMatchObject({ value: `v${i}` });
  });

  it("counting costs a write no extra call on the tenant item, and a read none at all", async () => {
    const calls: string[] = [];
    const name = "tenant-item-calls";
    h.table.doc.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { Key?: { pk?: unknown; sk?: unknown } };
        if (input.Key?.pk === "T#young" && input.Key.sk === "TENANT") calls.push(context.commandName ?? "");
        return next(args);
      },
      { step: "initialize", name },
    );
    try {
      expect((await put("young", "counted", "one")).status).toBe(200);
      // The one call a write always made on the tenant item (reading the current DEK), now the ADD.
      expect(calls).toEqual(["UpdateItemCommand"]);
      calls.length = 0;
      expect(await read("young", "counted")).toMatchObject({ value: "one" });
      expect(calls).toEqual([]);
    } finally {
      h.table.doc.middlewareStack.remove(name);
    }
  });

  it("refuses sealing past the hard limit with 503 dek_exhausted, writing nothing, until the DEK is rotated", async () => {
    let answer = await put("busy", "capped", "first");
    while (answer.status === 200) answer = await put("busy", "capped", `next-${await seals("busy")}`);
    expect(answer.status).toBe(503);
    expect((await answer.json()).error.code).toBe("dek_exhausted");
    expect(answer.text).not.toContain("next-");
    expect(await seals("busy")).toBe(9);
    const before = await read("busy", "capped");
    expect((await put("busy", "capped", "refused")).status).toBe(503);
    expect(await read("busy", "capped")).toEqual(before);

    // A rotation on request here, not the runner's: its sweep would at once spend the small limit
    // on re-sealing this tenant's items under the new DEK, which is counted like any other seal.
    expect((await h.call("POST", "/v1/tenants/busy/rotate-dek", { token: admin })).status).toBe(200);
    expect(await dekVersion("busy")).toBe(3);
    expect(await seals("busy")).toBe(0);
    expect((await put("busy", "capped", "after-rotation")).status).toBe(200);
    expect(await read("busy", "capped")).toMatchObject({ value: "after-rotation" });
  });
});
