import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kekFingerprint, LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { deadlineIn } from "../../shared/domain/work.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { TenantRepository } from "../../shared/storage/tenant-repository.ts";
import { type Harness, randomKek, startHarness, startStore } from "../../testing/harness.ts";
import { storedDekVersions } from "../../testing/rotation-fixtures.ts";

/*
 * Readers and writers hammer one tenant while its DEK is rotated twice and the KEK is changed and
 * every DEK re-wrapped. Writes use cas, so a lost or reordered write would show as a wrong version;
 * every value names its own version, so a read of the wrong ciphertext would show too.
 */

const TENANT = "busy";
const NAMES = Array.from({ length: 8 }, (_, i) => `secret-${i}`);
const ENV = { ROTATION_PAGE_SIZE: "25" };
const ROTATION = { retireGraceMs: 1000 };
const REASON = { "x-audit-reason": "concurrency test" };
const kekA = randomKek();
const kekB = randomKek();

let store: { dynamo: LocalDynamo; table: Table };
let before: Harness;
let after: Harness;
let admin: string;

const expectedValue = (name: string, version: number) => `${name}:${version}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  store = await startStore();
  before = await startHarness({
    store,
    env: ENV,
    rotation: ROTATION,
    keyring: new LocalKeyring({ active: kekA, previous: [] }),
  });
  admin = await before.token("admin");
  expect(
    (await before.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } })).status,
  ).toBe(201);
  for (const name of NAMES) {
    const put = await before.call("PUT", `/v1/tenants/${TENANT}/secrets/${name}`, {
      token: admin,
      body: { value: expectedValue(name, 1), cas: 0 },
    });
    expect(put.status).toBe(200);
  }
  // The deployment after the KEK change: B is active, A is kept as the previous KEK.
  after = await startHarness({
    store,
    env: ENV,
    rotation: ROTATION,
    keyring: new LocalKeyring({ active: kekB, previous: [kekA] }),
  });
});
afterAll(async () => {
  await store?.dynamo.close();
});

describe("readers and writers while the DEK and the KEK rotate", () => {
  it("see zero errors and no lost or reordered writes", async () => {
    const errors: string[] = [];
    const latest = new Map(NAMES.map((name) => [name, 1]));
    let stop = false;
    let reads = 0;
    let writes = 0;

    const writer = async (names: string[]) => {
      while (!stop) {
        for (const name of names) {
          const version = latest.get(name) ?? 0;
          const put = await after.call("PUT", `/v1/tenants/${TENANT}/secrets/${name}`, {
            token: admin,
            body: { value: expectedValue(name, version + 1), cas: version },
          });
          if (put.status !== 200) errors.push(`write ${name}: ${put.status} ${put.text}`);
          else if ((await put.json()).version !== version + 1) errors.push(`write ${name} skipped a version`);
          else {
            latest.set(name, version + 1);
            writes += 1;
          }
        }
      }
    };
    const reader = async (seed: number) => {
      const seen = new Map<string, number>();
      let i = seed;
      while (!stop) {
        const name = NAMES[i++ % NAMES.length] as string;
        const got = await after.call("GET", `/v1/tenants/${TENANT}/secrets/${name}`, {
          token: admin,
          headers: REASON,
        });
        if (got.status !== 200) {
          errors.push(`read ${name}: ${got.status} ${got.text}`);
          continue;
        }
        const body = await got.json();
        if (body.value !== expectedValue(name, body.version))
          errors.push(`read ${name} v${body.version}: wrong value`);
        if (body.version < (seen.get(name) ?? 0)) errors.push(`read ${name} went back to v${body.version}`);
        seen.set(name, body.version);
        reads += 1;
      }
    };

    const workers = [
      writer(NAMES.slice(0, 2)),
      writer(NAMES.slice(2, 4)),
      writer(NAMES.slice(4, 6)),
      writer(NAMES.slice(6, 8)),
      reader(0),
      reader(3),
      reader(5),
      reader(7),
    ];

    const runUntil = async (done: () => Promise<boolean>) => {
      for (let run = 0; run < 200 && !(await done()); run += 1) {
        const summary = await after.runtime.scheduledWork.run(deadlineIn(5_000), `concurrency-${run}`);
        if (process.env.DEBUG_ROT)
          console.log(JSON.stringify(summary), after.runtime.metrics.count("RotationFailures"));
        await sleep(50);
      }
    };
    const swept = async () => !(await after.runtime.dekSweep.pendingSweeps()).includes(TENANT);
    try {
      for (const expected of [2, 3]) {
        const rotated = await after.call("POST", `/v1/tenants/${TENANT}/rotate-dek`, { token: admin });
        expect(await rotated.json()).toEqual({ tenantId: TENANT, dekVersion: expected });
        if (expected === 3) {
          const rewrap = await after.call("POST", "/v1/kek/rewrap", { token: admin });
          expect(rewrap.status).toBe(202);
        }
        await runUntil(swept);
      }
      await runUntil(async () => (await after.runtime.kekRewrap.rewrapState())?.phase === "done");
    } finally {
      stop = true;
      await Promise.all(workers);
    }

    expect(errors).toEqual([]);
    expect(after.runtime.metrics.count("RotationFailures")).toBe(0);
    expect(reads).toBeGreaterThan(50);
    expect(writes).toBeGreaterThan(50);

    // Every version every writer committed reads back as written: nothing lost, nothing reordered.
    for (const name of NAMES) {
      const last = latest.get(name) ?? 0;
      for (let version = 1; version <= last; version += 1) {
        const got = await after.call("GET", `/v1/tenants/${TENANT}/secrets/${name}?version=${version}`, {
          token: admin,
          headers: REASON,
        });
        expect(await got.json()).toMatchObject({ version, value: expectedValue(name, version) });
      }
    }
    const versions = await storedDekVersions(store.table, TENANT);
    expect(Object.keys(versions)).toEqual(["3"]);
    const tenant = await new TenantRepository(store.table).get(TENANT);
    expect(tenant?.dataKeys.map((key) => [key.version, key.kekId])).toEqual([[3, kekFingerprint(kekB)]]);
    expect(tenant?.retiredDataKeys?.map((key) => key.version)).toEqual([1, 2]);
    expect(await new TenantRepository(store.table).registeredKeks()).toEqual([kekFingerprint(kekB)]);
  }, 120_000);
});
