import { KMSClient } from "@aws-sdk/client-kms";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { KmsChainKeys } from "../../shared/crypto/chain-keys.ts";
import { KmsKeyring } from "../../shared/crypto/kms-keyring.ts";
import { ConfigError } from "../../shared/domain/errors.ts";
import { readRuntimeConfig } from "../../shared/runtime/config.ts";
import { createKeyring } from "../../shared/runtime/container.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { getRawAuditRecord } from "../../testing/faults.ts";
import { DUMMY_CREDENTIALS, type Harness, startHarness, startStore } from "../../testing/harness.ts";
import { initialKeyId, type KmsEndpoint, startKmsEndpoint } from "../../testing/kms-endpoint.ts";

// KMS cannot run here: the real KMS client talks to the loopback KMS-protocol endpoint, whose
// GenerateMac is a real HMAC-SHA256 under a per-key secret.
let kms: KmsEndpoint;
let store: { dynamo: LocalDynamo; table: Table };
let macKeyArn: string;
let h: Harness;
let admin: string;

const client = () =>
  new KMSClient({
    endpoint: kms.endpoint,
    region: "us-east-1",
    credentials: DUMMY_CREDENTIALS,
    maxAttempts: 1,
  });
const instance = (macKeyId: string) =>
  startHarness({
    store,
    keyring: new KmsKeyring({ client: client(), keyId: "alias/strongbox-test" }),
    chainKeys: new KmsChainKeys({ client: client(), keyId: macKeyId }),
  });

beforeAll(async () => {
  kms = await startKmsEndpoint({ aliases: { "alias/strongbox-test": initialKeyId(1) } });
  macKeyArn = kms.createHmacKey();
  store = await startStore();
  h = await instance(macKeyArn);
  admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } })).status).toBe(
    201,
  );
});
afterAll(async () => {
  await kms.close();
  await store.dynamo.close();
});

describe("the audit chain on a KMS HMAC key", () => {
  it("a fresh instance makes one GenerateMac for the day's key (and one for the token items' key), then none for any number of appends", async () => {
    const fresh = await instance(macKeyArn);
    kms.resetCalls();
    for (let i = 0; i < 20; i += 1) {
      const put = await fresh.call("PUT", "/v1/tenants/acme/secrets/k", {
        token: admin,
        body: { value: "v" },
      });
      expect(put.status).toBe(200);
    }
    // The item integrity key, to check the admin token, and the day's chain key: one call each.
    expect(kms.calls.GenerateMac).toBe(2);
    const record = await getRawAuditRecord(store.table, "acme", 3);
    expect(record.macKeyRef).toBe(`kms:${macKeyArn}:${new Date().toISOString().slice(0, 10)}`);
  });

  it("verifies intact through the KMS key, from another instance", async () => {
    const verifier = await instance(macKeyArn);
    const result = await verifier.runtime.chainVerifier.verify("acme");
    expect(result.intact).toBe(true);
    expect(result.verifiedThrough).toBeGreaterThan(40);
  });

  it("an instance configured with another HMAC key trusts none of the records", async () => {
    const other = await instance(kms.createHmacKey());
    expect(await other.runtime.chainVerifier.verify("acme")).toMatchObject({
      intact: false,
      break: { sequence: 1, reason: "unknown_mac_key" },
    });
  });

  it("fails closed when the day's key cannot be derived: the read is refused with audit_unavailable", async () => {
    const put = await h.call("PUT", "/v1/tenants/acme/secrets/closed", {
      token: admin,
      body: { value: "v" },
    });
    expect(put.status).toBe(200);
    const fresh = await instance(macKeyArn);
    // The token check's key is derived first; then KMS refuses the day's key.
    expect(await fresh.runtime.tokens.isActive(admin.split("_")[1] ?? "")).toBe(true);
    kms.failNext("GenerateMac", "KMSInternalException", 1);
    const response = await fresh.call("GET", "/v1/tenants/acme/secrets/closed", {
      token: admin,
      headers: { "x-audit-reason": "kms chain test" },
    });
    expect(response.status).toBe(503);
    expect((await response.json()).error.code).toBe("audit_unavailable");
    expect(response.text).not.toContain('"value"');

    // An encryption key where an HMAC key belongs: KMS refuses GenerateMac with InvalidKeyUsage, so
    // not even the token can be checked.
    const misconfigured = await instance(kms.keyArn("alias/strongbox-test"));
    const refused = await misconfigured.call("GET", "/v1/tenants/acme/secrets/closed", {
      token: admin,
      headers: { "x-audit-reason": "kms chain test" },
    });
    expect(refused.status).toBe(503);
    expect((await refused.json()).error.code).toBe("keyring_unavailable");
    expect(refused.text).not.toContain('"value"');
  });
});

describe("configuration", () => {
  it("KMS_KEY_ID without AUDIT_MAC_KEY_ID is refused at start-up, naming the variable", () => {
    const env = { KMS_KEY_ID: "alias/strongbox-test" };
    expect(() => createKeyring(env, readRuntimeConfig(env))).toThrow(ConfigError);
    try {
      createKeyring(env, readRuntimeConfig(env));
    } catch (error) {
      expect((error as ConfigError).variable).toBe("AUDIT_MAC_KEY_ID");
    }
  });

  it("with AUDIT_MAC_KEY_ID the chain is keyed by that KMS HMAC key", async () => {
    const env = {
      KMS_KEY_ID: "alias/strongbox-test",
      AUDIT_MAC_KEY_ID: macKeyArn,
      KMS_ENDPOINT: kms.endpoint,
    };
    // The SDK's default credential chain reads the process environment.
    vi.stubEnv("AWS_ACCESS_KEY_ID", "test");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test");
    try {
      const { chainKeys } = createKeyring(env, readRuntimeConfig(env));
      const day = new Date().toISOString().slice(0, 10);
      expect((await chainKeys.current(new Date())).ref).toBe(`kms:${macKeyArn}:${day}`);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
