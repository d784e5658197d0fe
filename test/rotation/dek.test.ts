import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { envelopeDekVersion } from "../../shared/crypto/envelope.ts";
import { deadlineIn } from "../../shared/domain/work.ts";
import { getRawItem, headKey, tenantKey } from "../../testing/faults.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";
import {
  crashAfterWrites,
  expectAllReadable,
  seedTenant,
  storedDekVersions,
  runUntilSwept as sweepToDone,
  TEST_RETIRE_GRACE_MS,
  type TenantModel,
} from "../../testing/rotation-fixtures.ts";

// No grace period and no leases: these tests run one writer at a time, and a "crashed" runner's claim
// must not make the resumed run wait. The concurrency test below runs with a real grace period.
const ENV = { ROTATION_LEASE_SECONDS: "0", ROTATION_PAGE_SIZE: "4" };

let h: Harness;
let admin: string;

beforeAll(async () => {
  h = await startHarness({ env: ENV, rotation: { retireGraceMs: TEST_RETIRE_GRACE_MS } });
  admin = await h.token("admin");
});
afterAll(() => h?.close());

const runOnce = () => h.runtime.scheduledWork.run(deadlineIn(20_000), `test-${Date.now()}`);

const runUntilSwept = (tenant: string) => sweepToDone(h, tenant, "test");

describe("DEK rotation of one tenant", () => {
  const tenant = "dek-basic";
  let model: TenantModel;

  beforeAll(async () => {
    model = await seedTenant(h, admin, tenant);
  });

  it("creates DEK v2, which the next write uses at once, while everything else stays on v1 and readable", async () => {
    const rotated = await h.call("POST", `/v1/tenants/${tenant}/rotate-dek`, { token: admin });
    expect(rotated.status).toBe(200);
    expect(await rotated.json()).toEqual({ tenantId: tenant, dekVersion: 2 });

    const put = await h.call("PUT", `/v1/tenants/${tenant}/secrets/api-key`, {
      token: admin,
      body: { value: `${tenant}-api-2` },
    });
    expect(put.status).toBe(200);
    const apiKey = model["api-key"];
    if (apiKey === undefined) throw new Error("seed is missing api-key");
    apiKey.values.push(`${tenant}-api-2`);
    apiKey.previous = 1;
    apiKey.current = 2;
    const head = await getRawItem(h.table, headKey(tenant, "api-key"));
    expect(envelopeDekVersion(head.envelope)).toBe(2);

    const status = await (await h.call("GET", `/v1/tenants/${tenant}/rotation`, { token: admin })).json();
    expect(status.currentDekVersion).toBe(2);
    // 10 heads, 5 archived versions and one pending value: all on v1 but the head just written.
    expect(status.itemsByDekVersion).toEqual({ 1: 15, 2: 1 });
    expect(status.dataKeys.map((k: { version: number; items: number }) => [k.version, k.items])).toEqual([
      [1, 15],
      [2, 1],
    ]);
    expect(status.sweep).toMatchObject({ targetDekVersion: 2, phase: "reencrypt" });
    await expectAllReadable(h, admin, tenant, model);
  });

  it("the sweep re-encrypts every item, retires v1 only afterwards, and destroys its wrapped key", async () => {
    // The first run re-seals everything, then stops to wait out the grace period before it may retire.
    const run = await (await h.call("POST", "/v1/rotation/run", { token: admin })).json();
    expect(run.sweeps).toContainEqual(
      // 14 items: the head with a pending value is one item holding two ciphertexts.
      expect.objectContaining({ tenantId: tenant, resealed: 14, stoppedBecause: "grace" }),
    );
    expect(
      (await h.call("GET", `/v1/tenants/${tenant}/rotation`, { token: admin }).then((r) => r.json()))
        .retiredDataKeys,
    ).toEqual([]);
    const last = await runUntilSwept(tenant);
    expect(last.sweeps).toContainEqual(
      expect.objectContaining({ tenantId: tenant, phase: "done", resealed: 0, stoppedBecause: "done" }),
    );
    expect(await storedDekVersions(h.table, tenant)).toEqual({ 2: 16 });
    const status = await (await h.call("GET", `/v1/tenants/${tenant}/rotation`, { token: admin })).json();
    expect(status.itemsByDekVersion).toEqual({ 2: 16 });
    expect(status.retiredDataKeys).toEqual([expect.objectContaining({ version: 1 })]);
    expect(status.sweep).toMatchObject({ phase: "done", retiredVersions: [1], resealed: 14 });
    const raw = await getRawItem(h.table, tenantKey(tenant));
    expect(raw.dataKeys.map((k: { version: number }) => k.version)).toEqual([2]);
    expect(JSON.stringify(raw.retiredDataKeys)).not.toContain("ciphertext");
    expect(await h.runtime.dekSweep.pendingSweeps()).not.toContain(tenant);
    await expectAllReadable(h, admin, tenant, model);
  });

  it("running the finished sweep again changes nothing", async () => {
    const before = await storedDekVersions(h.table, tenant);
    const run = await runOnce();
    expect(run.sweeps.find((s) => s.tenantId === tenant)).toBeUndefined();
    expect(await storedDekVersions(h.table, tenant)).toEqual(before);
  });

  it("the audit trail records the rotation as an attempt and a success, and the sweep as the system's change", async () => {
    const events = (
      await (await h.call("GET", `/v1/tenants/${tenant}/audit?limit=999`, { token: admin })).json()
    ).events;
    const rotate = events.filter((e: { action: string }) => e.action === "tenant.rotate-dek");
    expect(rotate.map((e: { outcome: string }) => e.outcome).sort()).toEqual(["attempt", "success"]);
    const sweep = events.filter((e: { action: string }) => e.action === "tenant.reencrypt");
    expect(sweep.length).toBeGreaterThanOrEqual(2);
    for (const event of sweep) expect(event).toMatchObject({ actor: "rotation", role: "system" });
  });
});

describe("a DEK sweep that crashes after k writes", () => {
  // Writes of a whole run, counted once without a crash; every k below that is tried.
  let total = 0;

  beforeAll(async () => {
    const model = await seedTenant(h, admin, "crash-count", 2);
    expect((await h.call("POST", "/v1/tenants/crash-count/rotate-dek", { token: admin })).status).toBe(200);
    const counter = crashAfterWrites(h.table, Number.POSITIVE_INFINITY);
    await runUntilSwept("crash-count");
    counter.remove();
    total = counter.writes;
    expect(await storedDekVersions(h.table, "crash-count")).toEqual({ 2: 11 });
    await expectAllReadable(h, admin, "crash-count", model);
  });

  it("counted the writes of an uninterrupted run", () => {
    // 10 re-seals, a checkpoint per page of 4 over three passes, the leases, the retirement, the queue.
    expect(total).toBeGreaterThan(25);
  });

  it("at many k leaves every secret readable at every version and label, and resumes to a complete state", async () => {
    // Every k through the first pass, then every second one, and the very last write.
    const ks = [
      ...new Set([
        ...Array.from({ length: total }, (_, k) => k).filter((k) => k < 10 || k % 2 === 0),
        total - 1,
      ]),
    ];
    expect(ks.length).toBeGreaterThan(15);
    for (const k of ks) {
      const tenant = `crash-${k}`;
      const model = await seedTenant(h, admin, tenant, 2);
      expect((await h.call("POST", `/v1/tenants/${tenant}/rotate-dek`, { token: admin })).status).toBe(200);
      const crash = crashAfterWrites(h.table, k);
      // The crashed process's own answer does not matter: only what it left in the table does. Runs
      // go on (waiting out the grace periods) until the crash has struck.
      for (let run = 0; run < 40 && crash.refused === 0; run += 1) {
        await runOnce().catch(() => undefined);
        if (crash.refused === 0)
          await new Promise((resolve) => setTimeout(resolve, TEST_RETIRE_GRACE_MS / 4));
      }
      crash.remove();
      expect(crash.refused, `k=${k}`).toBeGreaterThan(0);
      await expectAllReadable(h, admin, tenant, model);

      await runUntilSwept(tenant);
      expect(await storedDekVersions(h.table, tenant), `k=${k}`).toEqual({ 2: 11 });
      const raw = await getRawItem(h.table, tenantKey(tenant));
      expect(
        raw.dataKeys.map((key: { version: number }) => key.version),
        `k=${k}`,
      ).toEqual([2]);
      await expectAllReadable(h, admin, tenant, model);
    }
  }, 240_000);
});

describe("a writer holding a DEK snapshot across a rotation", () => {
  it("takes a fresh snapshot instead of committing under the old DEK once half the grace period has passed", async () => {
    const g = await startHarness({ rotation: { retireGraceMs: 1000 } });
    try {
      const token = await g.token("admin");
      const tenant = "slow-writer";
      expect((await g.call("POST", "/v1/tenants", { token, body: { tenantId: tenant } })).status).toBe(201);
      const path = `/v1/tenants/${tenant}/secrets/slow`;
      expect((await g.call("PUT", path, { token, body: { value: "first" } })).status).toBe(200);
      // The writer's first archive write stalls for longer than half the grace period, and the DEK
      // is rotated while it waits: the DEK snapshot it sealed with is stale by the time it resumes.
      let stalled = false;
      g.table.doc.middlewareStack.add(
        (next, context) => async (args) => {
          // The document client may already have marshalled the item: `sk` is then `{ S: "…" }`.
          const sk = (args.input as { Item?: { sk?: unknown } }).Item?.sk;
          const sortKey = typeof sk === "string" ? sk : String((sk as { S?: unknown } | undefined)?.S);
          if (!stalled && context.commandName === "PutItemCommand" && sortKey.startsWith("V#slow#")) {
            stalled = true;
            await new Promise((resolve) => setTimeout(resolve, 700));
          }
          return next(args);
        },
        { step: "initialize", name: "stall-first-archive" },
      );
      const write = g.call("PUT", path, { token, body: { value: "second" } });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await g.call("POST", `/v1/tenants/${tenant}/rotate-dek`, { token })).status).toBe(200);
      expect(await (await write).json()).toEqual({ name: "slow", version: 2 });
      expect(stalled).toBe(true);
      const head = await getRawItem(g.table, headKey(tenant, "slow"));
      expect(envelopeDekVersion(head.envelope)).toBe(2);
    } finally {
      await g.close();
    }
  });
});
