import { afterEach, describe, expect, it } from "vitest";
import { kekFingerprint, LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { deadlineIn } from "../../shared/domain/work.ts";
import { TenantRepository } from "../../shared/storage/tenant-repository.ts";
import {
  countCalls,
  deleteRawItem,
  getRawItem,
  injectFault,
  putRawItem,
  type SdkCall,
  scans,
} from "../../testing/faults.ts";
import { type Harness, randomKek, startHarness, startStore } from "../../testing/harness.ts";
import { rewrapAndSettle } from "../../testing/rewrap.ts";
import { asWrittenBeforeTheDirectory } from "../../testing/rotation-fixtures.ts";

// The tenant directory (pk TENANTS) lets work over every tenant Query instead of Scan. Whether it is
// complete is recorded on the KEK registry item (META / KEKS), which every tenant creation writes
// first; a table written before the directory existed needs one backfill Scan, which only the rotation
// function and npm start may run. These tests count the Scans the service's own client sends.

type Store = Awaited<ReturnType<typeof startStore>>;
const REGISTRY = { pk: "META", sk: "KEKS" };
const stores: Store[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) await store.dynamo.close();
});

async function freshStore(): Promise<Store> {
  const store = await startStore();
  stores.push(store);
  return store;
}

/** UpdateItem calls on the KEK registry item, marshalled or not. */
const registryUpdates = (call: SdkCall) => {
  if (call.commandName !== "UpdateItemCommand") return false;
  const key = call.input.Key as { pk?: unknown; sk?: unknown } | undefined;
  const text = (value: unknown) => (typeof value === "string" ? value : (value as { S?: string })?.S);
  return text(key?.pk) === "META" && text(key?.sk) === "KEKS";
};

async function seedTenants(h: Harness, admin: string, ids: readonly string[]) {
  for (const tenantId of ids) {
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId } })).status).toBe(201);
    const put = await h.call("PUT", `/v1/tenants/${tenantId}/secrets/k`, {
      token: admin,
      body: { value: "v" },
    });
    expect(put.status).toBe(200);
  }
}

describe("a table this version created", () => {
  it("is marked complete by its first KEK registration, and nothing ever Scans it", async () => {
    const store = await freshStore();
    const kekA = randomKek();
    // npm start's runtime: it may backfill, and still must not need to.
    const h = await startHarness({
      store,
      keyring: new LocalKeyring({ active: kekA, previous: [] }),
      directoryBackfill: true,
    });
    const admin = await h.token("admin");
    const scanned = countCalls(store.table, scans);
    const updates = countCalls(store.table, registryUpdates);

    await seedTenants(h, admin, ["first"]);
    // The plain ADD finds no item, then the create with the flag lands.
    expect(updates.count).toBe(2);
    expect(await getRawItem(store.table, REGISTRY)).toMatchObject({ directoryComplete: true });
    await seedTenants(h, admin, ["second", "third"]);
    // From then on one call per registration.
    expect(updates.count).toBe(4);

    expect((await h.runtime.directoryBackfill?.run())?.scanned).toBe(false);
    expect((await h.call("GET", "/v1/kek", { token: admin })).status).toBe(200);
    const run = await h.call("POST", "/v1/rotation/run", { token: admin });
    expect(run.status).toBe(200);
    expect((await run.json()).due.scanComplete).toBe(true);
    await h.runtime.scheduledWork.run(deadlineIn(10_000), "fresh");

    const rotated = await startHarness({
      store,
      keyring: new LocalKeyring({ active: randomKek(), previous: [kekA] }),
      directoryBackfill: true,
    });
    const report = await rewrapAndSettle(rotated, await rotated.token("admin"));
    expect(report.rewrap).toMatchObject({ phase: "done", rewrapped: 3 });

    expect(scanned.count).toBe(0);
    scanned.remove();
    updates.remove();
  });

  it("two first registrations racing both land, and the item they create says complete", async () => {
    const store = await freshStore();
    const [a, b] = [new TenantRepository(store.table), new TenantRepository(store.table)];
    await Promise.all([a.registerKek("kek-a"), b.registerKek("kek-b"), a.registerKek("kek-c")]);
    expect(await new TenantRepository(store.table).registeredKeks()).toEqual(["kek-a", "kek-b", "kek-c"]);
    expect(await getRawItem(store.table, REGISTRY)).toMatchObject({ directoryComplete: true });
  });

  it("with no registry item at all (no tenant ever) is complete without a read of anything else", async () => {
    const store = await freshStore();
    const tenants = new TenantRepository(store.table);
    expect(await tenants.directoryComplete()).toBe(true);
    await expect(tenants.requireDirectory()).resolves.toBeUndefined();
  });
});

describe("a table written before the tenant directory existed", () => {
  async function legacyTable() {
    const store = await freshStore();
    const kek = randomKek();
    const seeder = await startHarness({ store, keyring: new LocalKeyring({ active: kek, previous: [] }) });
    await seedTenants(seeder, await seeder.token("admin"), ["old-one", "old-two", "new-one"]);
    // The two old tenants have no directory entry; the newer one wrote its own.
    await asWrittenBeforeTheDirectory(store.table, ["old-one", "old-two"]);
    const api = await startHarness({ store, keyring: new LocalKeyring({ active: kek, previous: [] }) });
    const rotation = await startHarness({
      store,
      keyring: new LocalKeyring({ active: kek, previous: [] }),
      directoryBackfill: true,
    });
    return { store, kek, api, apiAdmin: await api.token("admin"), rotation };
  }

  it("is refused by the API (503 directory_backfill_pending) without a Scan, until the rotation run has backfilled it", async () => {
    const { store, kek, api, apiAdmin, rotation } = await legacyTable();
    const scanned = countCalls(store.table, scans);
    for (const [method, path] of [
      ["GET", "/v1/kek"],
      ["POST", "/v1/rotation/run"],
    ] as const) {
      const refused = await api.call(method, path, { token: apiAdmin });
      expect(refused.status, path).toBe(503);
      expect((await refused.json()).error).toEqual({
        code: "directory_backfill_pending",
        message:
          "the tenant directory is being backfilled by the rotation function; retry after its next run",
      });
    }
    // Reads and writes of single tenants do not need the directory.
    const read = await api.call("GET", "/v1/tenants/old-one/secrets/k", {
      token: apiAdmin,
      headers: { "x-audit-reason": "directory test" },
    });
    expect(read.status).toBe(200);
    expect(scanned.count).toBe(0);

    const summary = await rotation.runtime.scheduledWork.run(deadlineIn(10_000), "backfill-run");
    expect(summary.due).toMatchObject({ scanComplete: true });
    expect(summary.due.code).toBeUndefined();
    expect(scanned.count).toBe(1);
    expect(await getRawItem(store.table, REGISTRY)).toMatchObject({ directoryComplete: true });

    const report = await api.call("GET", "/v1/kek", { token: apiAdmin });
    expect(report.status).toBe(200);
    expect((await report.json()).keks).toEqual([
      expect.objectContaining({ kekId: kekFingerprint(kek), dataKeys: 3 }),
    ]);
    expect((await api.call("POST", "/v1/rotation/run", { token: apiAdmin })).status).toBe(200);
    await rotation.runtime.scheduledWork.run(deadlineIn(10_000), "after-backfill");
    expect(scanned.count).toBe(1);
    scanned.remove();
  });

  it("a backfill that fails is counted and announced, the rest of the run goes on, and the next run backfills", async () => {
    const { store, rotation } = await legacyTable();
    const fault = injectFault(store.table, scans);
    const failed = await rotation.runtime.scheduledWork.run(deadlineIn(10_000), "failing-backfill");
    fault.remove();
    expect(fault.refused).toBe(1);
    // The due scan needs the directory too, so it refuses on its own, inside the run's error handling.
    expect(failed.due).toMatchObject({ found: 0, scanComplete: false, code: "directory_backfill_pending" });
    expect(rotation.runtime.metrics.count("RotationFailures")).toBe(2);

    const next = await rotation.runtime.scheduledWork.run(deadlineIn(10_000), "retry-backfill");
    expect(next.due).toMatchObject({ scanComplete: true });
    expect(await getRawItem(store.table, REGISTRY)).toMatchObject({ directoryComplete: true });
  });

  it("whose earlier backfill left its done marker counts as complete, and the marker moves into the flag", async () => {
    const { store, api, apiAdmin } = await legacyTable();
    // As an earlier version left it once its own backfill had added every entry.
    for (const tenantId of ["old-one", "old-two"])
      await putRawItem(store.table, { pk: "TENANTS", sk: tenantId, tenantId });
    await putRawItem(store.table, { pk: "META", sk: "TENANTS-BACKFILL", done: true });
    const scanned = countCalls(store.table, scans);
    expect((await api.call("GET", "/v1/kek", { token: apiAdmin })).status).toBe(200);
    expect(await getRawItem(store.table, REGISTRY)).toMatchObject({ directoryComplete: true });
    await deleteRawItem(store.table, { pk: "META", sk: "TENANTS-BACKFILL" });
    const fresh = await startHarness({ store, keyring: api.runtime.keyring });
    expect((await fresh.call("GET", "/v1/kek", { token: await fresh.token("admin") })).status).toBe(200);
    expect(scanned.count).toBe(0);
    scanned.remove();
  });
});
