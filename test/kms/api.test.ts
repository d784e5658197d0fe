import { KMSClient } from "@aws-sdk/client-kms";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KmsChainKeys } from "../../shared/crypto/chain-keys.ts";
import { KmsKeyring } from "../../shared/crypto/kms-keyring.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import { SecretRepository } from "../../shared/storage/secret-repository.ts";
import type { Table } from "../../shared/storage/table.ts";
import { TenantRepository } from "../../shared/storage/tenant-repository.ts";
import { DUMMY_CREDENTIALS, type Harness, startHarness, startStore } from "../../testing/harness.ts";
import { initialKeyId, type KmsEndpoint, startKmsEndpoint } from "../../testing/kms-endpoint.ts";

// KMS itself cannot run here, so the real KMS client talks to the loopback KMS-protocol endpoint.
let kms: KmsEndpoint;
let store: { dynamo: LocalDynamo; table: Table };
let h: Harness;
let admin: string;
const reason = { "x-audit-reason": "kms test" };

function kmsKeyring(): KmsKeyring {
  const client = new KMSClient({
    endpoint: kms.endpoint,
    region: "us-east-1",
    credentials: DUMMY_CREDENTIALS,
    maxAttempts: 1,
  });
  return new KmsKeyring({ client, keyId: "alias/strongbox-test" });
}

/** The audit chain's KMS HMAC key, reached through its own real KMS client. */
let macKeyArn: string;
const chainKeys = () =>
  new KmsChainKeys({
    client: new KMSClient({ endpoint: kms.endpoint, region: "us-east-1", credentials: DUMMY_CREDENTIALS }),
    keyId: macKeyArn,
  });

/** A second service instance on the same table: a cold data-key cache, like a fresh Lambda. */
const coldInstance = () => startHarness({ store, keyring: kmsKeyring(), chainKeys: chainKeys() });

beforeAll(async () => {
  kms = await startKmsEndpoint({ aliases: { "alias/strongbox-test": initialKeyId(1) } });
  macKeyArn = kms.createHmacKey();
  store = await startStore();
  h = await startHarness({ store, keyring: kmsKeyring(), chainKeys: chainKeys() });
  admin = await h.token("admin");
});
afterAll(async () => {
  await kms.close();
  await store.dynamo.close();
});
beforeEach(() => kms.setLatency(0));

describe("the API on the KMS keyring", () => {
  it("a new tenant's DEK v1 comes from GenerateDataKey and is stored wrapped under the key ARN", async () => {
    kms.resetCalls();
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } })).status).toBe(
      201,
    );
    expect(kms.calls.GenerateDataKey).toBe(1);
    const tenant = await new TenantRepository(store.table).get("acme");
    expect(tenant?.dataKeys[0]?.kekId).toBe(kms.keyArn("alias/strongbox-test"));
    expect(await new TenantRepository(store.table).registeredKeks()).toEqual([
      kms.keyArn("alias/strongbox-test"),
    ]);
    const health = await h.call("GET", "/health");
    expect(health.status).toBe(200);
  });

  it("writes and reads round-trip through KMS-wrapped DEKs", async () => {
    await h.call("PUT", "/v1/tenants/acme/secrets/api-key", { token: admin, body: { value: "sk-kms-1" } });
    const got = await h.call("GET", "/v1/tenants/acme/secrets/api-key", { token: admin, headers: reason });
    expect(await got.json()).toMatchObject({ version: 1, value: "sk-kms-1" });
  });

  it("concurrent cold reads make one Decrypt call, not one per request", async () => {
    const cold = await coldInstance();
    kms.setLatency(30);
    kms.resetCalls();
    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        cold.call("GET", "/v1/tenants/acme/secrets/api-key", { token: admin, headers: reason }),
      ),
    );
    for (const response of responses) expect(response.status).toBe(200);
    expect(kms.calls.Decrypt).toBe(1);
  });

  it("when GenerateDataKey fails the tenant is answered 503 and not created", async () => {
    kms.failNext("GenerateDataKey", "KMSInternalException");
    const response = await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "bravo" } });
    expect(response.status).toBe(503);
    expect((await response.json()).error.code).toBe("keyring_unavailable");
    expect(await new TenantRepository(store.table).get("bravo")).toBeUndefined();
    expect((await h.call("GET", "/v1/tenants/bravo", { token: admin })).status).toBe(404);
  });

  it("when Decrypt fails a write is answered 503 and nothing is stored", async () => {
    const cold = await coldInstance();
    kms.failNext("Decrypt", "KMSInternalException");
    const response = await cold.call("PUT", "/v1/tenants/acme/secrets/api-key", {
      token: admin,
      body: { value: "sk-kms-2" },
    });
    expect(response.status).toBe(503);
    const head = await new SecretRepository(store.table).getHead("acme", "api-key");
    expect(head?.current.version).toBe(1);
    expect(await new SecretRepository(store.table).getArchivedVersion("acme", "api-key", 1)).toBeUndefined();
  });

  it("when Decrypt fails a read is answered 503 with no value", async () => {
    const cold = await coldInstance();
    kms.failNext("Decrypt", "ThrottlingException");
    const response = await cold.call("GET", "/v1/tenants/acme/secrets/api-key", {
      token: admin,
      headers: reason,
    });
    expect(response.status).toBe(503);
    expect(response.text).not.toContain("sk-kms-1");
    expect((await response.json()).error.code).toBe("keyring_unavailable");
  });

  it("a DEK wrapped under a key that is no longer configured names both keys", async () => {
    const otherArn = kms.createKey();
    const client = new KMSClient({
      endpoint: kms.endpoint,
      region: "us-east-1",
      credentials: DUMMY_CREDENTIALS,
    });
    const elsewhere = await startHarness({
      store,
      keyring: new KmsKeyring({ client, keyId: otherArn }),
      chainKeys: chainKeys(),
    });
    const response = await elsewhere.call("GET", "/v1/tenants/acme/secrets/api-key", {
      token: admin,
      headers: reason,
    });
    expect(response.status).toBe(503);
    expect((await response.json()).error).toEqual({
      code: "kek_mismatch",
      message: `tenant acme's DEK v1 was wrapped by KEK ${kms.keyArn("alias/strongbox-test")}; configured KEKs: ${otherArn}`,
    });
    expect(elsewhere.runtime.metrics.count("DecryptFailures")).toBe(1);
  });
});
