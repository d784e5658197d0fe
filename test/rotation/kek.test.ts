import { KMSClient } from "@aws-sdk/client-kms";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChainKeys, KmsChainKeys } from "../../shared/crypto/chain-keys.ts";
import type { Keyring } from "../../shared/crypto/keyring.ts";
import { KmsKeyring } from "../../shared/crypto/kms-keyring.ts";
import { kekFingerprint, LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { deadlineIn } from "../../shared/domain/work.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { TenantRepository } from "../../shared/storage/tenant-repository.ts";
import {
  DUMMY_CREDENTIALS,
  type Harness,
  randomKek,
  startHarness,
  startStore,
} from "../../testing/harness.ts";
import { initialKeyId, type KmsEndpoint, startKmsEndpoint } from "../../testing/kms-endpoint.ts";
import { backgroundRewrapSettled, rewrapAndSettle, rewrapSettled } from "../../testing/rewrap.ts";
import {
  crashAfterWrites,
  expectAllReadable,
  seedTenant,
  type TenantModel,
} from "../../testing/rotation-fixtures.ts";

const ENV = { ROTATION_LEASE_SECONDS: "0", ROTATION_PAGE_SIZE: "2" };

type Store = { dynamo: LocalDynamo; table: Table };

async function instance(
  store: Store,
  keyring: Keyring,
  chainKeys?: ChainKeys,
): Promise<{ h: Harness; admin: string }> {
  const h = await startHarness({
    store,
    keyring,
    env: ENV,
    ...(chainKeys === undefined ? {} : { chainKeys }),
  });
  return { h, admin: await h.token("admin") };
}

async function dataKeysByKek(table: Table): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const tenants = new TenantRepository(table);
  let after: string | undefined;
  do {
    const page = await tenants.scan(after, 100);
    for (const tenant of page.tenants) {
      for (const key of tenant.dataKeys) counts[key.kekId] = (counts[key.kekId] ?? 0) + 1;
    }
    after = page.last;
  } while (after !== undefined);
  return counts;
}

describe("local KEK rotation: CREDENTIALS_KEK replaced, the old one in CREDENTIALS_KEK_PREVIOUS", () => {
  const kekA = randomKek();
  const kekB = randomKek();
  const fpA = kekFingerprint(kekA);
  const fpB = kekFingerprint(kekB);
  let store: Store;
  const models: Record<string, TenantModel> = {};

  beforeAll(async () => {
    store = await startStore();
    const old = await instance(store, new LocalKeyring({ active: kekA, previous: [] }));
    for (const tenant of ["kek-one", "kek-two", "kek-three"]) {
      models[tenant] = await seedTenant(old.h, old.admin, tenant, 1);
    }
    // A second DEK version, so tenants hold more than one DEK to re-wrap.
    expect((await old.h.call("POST", "/v1/tenants/kek-two/rotate-dek", { token: old.admin })).status).toBe(
      200,
    );
  });
  afterAll(() => store?.dynamo.close());

  it("with the new KEK and the old one as previous, everything reads and /v1/health warns about the old one", async () => {
    const { h, admin } = await instance(store, new LocalKeyring({ active: kekB, previous: [kekA] }));
    for (const [tenant, model] of Object.entries(models)) await expectAllReadable(h, admin, tenant, model);
    const health = await h.call("GET", "/v1/health", { token: admin });
    expect(health.status).toBe(200);
    const report = await health.json();
    expect(report.healthy).toBe(true);
    expect(report.warnings).toEqual([
      expect.stringContaining(`KEK ${fpA}, which is configured only as a previous key`),
    ]);
    const keks = await (await h.call("GET", "/v1/kek", { token: admin })).json();
    expect(keks.activeKekId).toBe(fpB);
    const old = keks.keks.find((k: { kekId: string }) => k.kekId === fpA);
    expect(old).toMatchObject({ configured: "previous", dataKeys: 4, mayBeRemoved: false });
    expect(old.status).toContain("4 DEKs still depend on KEK");
  });

  it("a re-wrap that crashes after k writes leaves everything readable, and resumes to zero DEKs on the old KEK", async () => {
    // Each k on its own copy of the same data, so every crash starts from the same state.
    const seeded = async () => {
      const copy = await startStore();
      const seeder = await instance(copy, new LocalKeyring({ active: kekA, previous: [] }));
      const copyModels: Record<string, TenantModel> = {};
      for (const tenant of Object.keys(models))
        copyModels[tenant] = await seedTenant(seeder.h, seeder.admin, tenant, 0);
      expect(
        (await seeder.h.call("POST", "/v1/tenants/kek-two/rotate-dek", { token: seeder.admin })).status,
      ).toBe(200);
      return {
        copy,
        copyModels,
        ...(await instance(copy, new LocalKeyring({ active: kekB, previous: [kekA] }))),
      };
    };
    const counting = await seeded();
    const counter = crashAfterWrites(counting.copy.table, Number.POSITIVE_INFINITY);
    const uninterrupted = await rewrapAndSettle(counting.h, counting.admin);
    counter.remove();
    await counting.copy.dynamo.close();
    expect(uninterrupted.rewrap?.phase).toBe("done");
    expect(counter.writes).toBeGreaterThan(5);

    for (let k = 0; k < counter.writes; k += 1) {
      const { copy, copyModels, h, admin } = await seeded();
      try {
        const crash = crashAfterWrites(copy.table, k);
        // 503 when the crash takes the request's own checkpoint write, else 202 and the worker crashes.
        expect([202, 503], `k=${k}`).toContain(
          (await h.call("POST", "/v1/kek/rewrap", { token: admin })).status,
        );
        await backgroundRewrapSettled(h);
        crash.remove();
        expect(crash.refused, `k=${k}`).toBeGreaterThan(0);
        for (const [tenant, model] of Object.entries(copyModels))
          await expectAllReadable(h, admin, tenant, model);
        // A crash before the re-wrap was recorded as started needs the route again; after, the
        // scheduled runner resumes it from the last checkpoint.
        if ((await h.runtime.kekRewrap.rewrapState()) === undefined) {
          expect((await h.call("POST", "/v1/kek/rewrap", { token: admin })).status).toBe(202);
          await backgroundRewrapSettled(h);
        }
        for (let run = 0; run < 5 && (await h.runtime.kekRewrap.rewrapState())?.phase !== "done"; run += 1) {
          await h.runtime.scheduledWork.run(deadlineIn(10_000), `resume-${run}`);
        }
        expect((await h.runtime.kekRewrap.rewrapState())?.phase, `k=${k}`).toBe("done");
        expect(await dataKeysByKek(copy.table), `k=${k}`).toEqual({ [fpB]: 4 });
        expect(await new TenantRepository(copy.table).registeredKeks(), `k=${k}`).toEqual([fpB]);
      } finally {
        await copy.dynamo.close();
      }
    }
    // One run per write the re-wrap makes, and the audit queue's writes count too: a hang guard sized
    // for a loaded 2-core runner, not a speed target.
  }, 300_000);

  it("the re-wrap route leaves no DEK on the old KEK, and the status and /v1/health say it may go", async () => {
    const { h, admin } = await instance(store, new LocalKeyring({ active: kekB, previous: [kekA] }));
    const accepted = await h.call("POST", "/v1/kek/rewrap", { token: admin });
    expect(accepted.status).toBe(202);
    expect(await accepted.json()).toMatchObject({ started: true, state: { phase: "rewrap", pass: 1 } });
    const report = await rewrapSettled(h, admin);
    expect(report.rewrap).toMatchObject({ phase: "done", pass: 1, rewrapped: 4, deregistered: [fpA] });
    expect(await dataKeysByKek(store.table)).toEqual({ [fpB]: 4 });
    expect(await new TenantRepository(store.table).registeredKeks()).toEqual([fpB]);
    const keks = await (await h.call("GET", "/v1/kek", { token: admin })).json();
    const old = keks.keks.find((k: { kekId: string }) => k.kekId === fpA);
    expect(old).toMatchObject({ dataKeys: 0, mayBeRemoved: true });
    expect(old.status).toContain("it may be removed");
    expect((await (await h.call("GET", "/v1/health", { token: admin })).json()).warnings).toEqual([]);
  });

  it("after the re-wrap, with the old KEK removed, everything still reads", async () => {
    const { h, admin } = await instance(store, new LocalKeyring({ active: kekB, previous: [] }));
    expect((await h.call("GET", "/health")).status).toBe(200);
    for (const [tenant, model] of Object.entries(models)) await expectAllReadable(h, admin, tenant, model);
  });
});

describe("KMS KEK rotation: KMS_KEY_ID points at a new key", () => {
  let kms: KmsEndpoint;
  let store: Store;
  const models: Record<string, TenantModel> = {};

  const keyring = (keyId: string, previous: string[] = []) =>
    new KmsKeyring({
      client: new KMSClient({
        endpoint: kms.endpoint,
        region: "us-east-1",
        credentials: DUMMY_CREDENTIALS,
        maxAttempts: 1,
      }),
      keyId,
      previousKeyIds: previous,
    });

  /** The audit chain's HMAC key: a KMS keyring needs one, and it stays the same across the KEK change. */
  let macKeyArn: string;
  const chainKeys = () =>
    new KmsChainKeys({
      client: new KMSClient({ endpoint: kms.endpoint, region: "us-east-1", credentials: DUMMY_CREDENTIALS }),
      keyId: macKeyArn,
    });

  beforeAll(async () => {
    kms = await startKmsEndpoint({ keys: 2, aliases: { "alias/strongbox": initialKeyId(1) } });
    macKeyArn = kms.createHmacKey();
    store = await startStore();
    const old = await instance(store, keyring("alias/strongbox"), chainKeys());
    for (const tenant of ["kms-one", "kms-two"])
      models[tenant] = await seedTenant(old.h, old.admin, tenant, 1);
    expect((await old.h.call("POST", "/v1/tenants/kms-one/rotate-dek", { token: old.admin })).status).toBe(
      200,
    );
  });
  afterAll(async () => {
    await kms.close();
    await store?.dynamo.close();
  });

  it("re-wraps every DEK with one ReEncrypt call each, never Decrypt or GenerateDataKey", async () => {
    const { h, admin } = await instance(store, keyring(initialKeyId(2), [initialKeyId(1)]), chainKeys());
    // Resolving the configured key ids and the audit chain's day key happen once per instance, on the
    // first audited call; counted from here on.
    expect((await h.call("GET", "/v1/kek", { token: admin })).status).toBe(200);
    kms.resetCalls();
    expect((await h.call("POST", "/v1/kek/rewrap", { token: admin })).status).toBe(202);
    await backgroundRewrapSettled(h);
    const calls = { ...kms.calls };
    const run = (await rewrapSettled(h, admin)).rewrap;
    expect(run?.phase).toBe("done");
    expect(run?.rewrapped).toBe(3);
    expect(calls).toEqual({ ReEncrypt: 3 });
    expect(await dataKeysByKek(store.table)).toEqual({ [kms.keyArn(initialKeyId(2))]: 3 });
    expect(await new TenantRepository(store.table).registeredKeks()).toEqual([kms.keyArn(initialKeyId(2))]);
  });

  it("afterwards an instance that knows only the new key reads everything", async () => {
    const { h, admin } = await instance(store, keyring(initialKeyId(2)), chainKeys());
    expect((await h.call("GET", "/health")).status).toBe(200);
    for (const [tenant, model] of Object.entries(models)) await expectAllReadable(h, admin, tenant, model);
  });
});
