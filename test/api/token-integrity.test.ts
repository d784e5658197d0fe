import { createHash, randomBytes } from "node:crypto";
import { Logger } from "@aws-lambda-powertools/logger";
import { KMSClient } from "@aws-sdk/client-kms";
import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KmsChainKeys } from "../../shared/crypto/chain-keys.ts";
import { KmsKeyring } from "../../shared/crypto/kms-keyring.ts";
import { kekFingerprint, LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { getRawItem, putRawItem } from "../../testing/faults.ts";
import {
  DUMMY_CREDENTIALS,
  type Harness,
  randomKek,
  startHarness,
  startStore,
} from "../../testing/harness.ts";
import { initialKeyId, type KmsEndpoint, startKmsEndpoint } from "../../testing/kms-endpoint.ts";
import { captureProcessOutput, type OutputCapture } from "../../testing/output-capture.ts";

// Token items carry a MAC under a key the table never holds. Everything here edits the table the way a
// principal with table write access (and no access to the key's keeper) could: through the real SDK.

const KEK = randomKek();
const SECRET_VALUE = `integrity-canary-${randomBytes(8).toString("hex")}`;
const reason = { "x-audit-reason": "integrity test" };
const read = "/v1/tenants/acme/secrets/db-password";

let store: { dynamo: LocalDynamo; table: Table };
let h: Harness;
let admin: string;
let output: OutputCapture;

const tokenKey = (tokenId: string) => ({ pk: `TOKEN#${tokenId}`, sk: "TOKEN" });
const idOf = (token: string) => token.split("_")[1] ?? "";
const failures = (harness: Harness = h) => harness.runtime.metrics.count("IntegrityFailures");
const hashOf = (secret: string) => new Uint8Array(createHash("sha256").update(secret).digest());
/** A well-formed bearer token whose id and secret half the caller chose. */
const bearer = (tokenId: string, secret: string) => `sbx_${tokenId}_${secret}`;
const randomId = () =>
  [...randomBytes(26)].map((byte) => "abcdefghijklmnopqrstuvwxyz234567"[byte % 32]).join("");

async function unknownTokenBody(): Promise<string> {
  const response = await h.call("GET", read, {
    token: bearer(randomId(), randomBytes(32).toString("hex")),
    headers: reason,
  });
  expect(response.status).toBe(401);
  return response.text;
}

async function updateRaw(table: Table, key: { pk: string; sk: string }, update: string, values?: object) {
  await table.doc.send(
    new UpdateCommand({
      TableName: table.name,
      Key: key,
      UpdateExpression: update,
      ...(values === undefined ? {} : { ExpressionAttributeValues: values as Record<string, unknown> }),
    }),
  );
}

/** The service's log lines since the capture began, parsed. */
const logLines = () =>
  output.writes
    .join("")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
const integrityLogs = () =>
  logLines().filter((line) => String(line.message).includes("failed its integrity check"));

/** The `_system` chain's denial records, as the trail holds them. */
async function denialDetails(): Promise<string[]> {
  const response = await h.call("GET", "/v1/tenants/acme/audit?outcome=denied&limit=999", { token: admin });
  return ((await response.json()).events as { detail?: string }[]).map((event) => event.detail ?? "");
}

beforeAll(async () => {
  output = captureProcessOutput();
  store = await startStore();
  h = await startHarness({
    store,
    keyring: new LocalKeyring({ active: KEK, previous: [] }),
    logger: new Logger({ serviceName: "strongbox-integrity", logLevel: "INFO" }),
    // Every denial in full, so the trail shows each one's reason.
    env: { AUDIT_DENIAL_WINDOW_SECONDS: "0" },
  });
  admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } })).status).toBe(
    201,
  );
  expect((await h.call("PUT", read, { token: admin, body: { value: SECRET_VALUE } })).status).toBe(200);
});
afterAll(async () => {
  output.restore();
  await store.dynamo.close();
});

describe("token items carry a MAC", () => {
  it("are stored with a MAC and a reference naming the KEK's fingerprint, never the key", async () => {
    const item = await getRawItem(store.table, tokenKey(idOf(admin)));
    expect(item.mac).toMatch(/^[0-9a-f]{64}$/);
    expect(item.macKeyRef).toBe(`local:${kekFingerprint(KEK)}`);
    expect(Object.keys(item).sort()).toEqual(
      [
        "createdAt",
        "expiresAt",
        "mac",
        "macKeyRef",
        "pk",
        "role",
        "secretHash",
        "sk",
        "tenants",
        "tokenId",
      ].sort(),
    );
  });

  it("a forged TOKEN# item with role admin and a known hash is refused as unknown, counted and logged by id", async () => {
    const unknown = await unknownTokenBody();
    const secret = randomBytes(32).toString("hex");
    const genuine = await getRawItem(store.table, tokenKey(idOf(admin)));
    const forgeries = {
      "no MAC": {},
      "the admin's MAC copied": { mac: genuine.mac, macKeyRef: genuine.macKeyRef },
      "a MAC of its own": { mac: randomBytes(32).toString("hex"), macKeyRef: genuine.macKeyRef },
      "a reference to a key it made up": {
        mac: randomBytes(32).toString("hex"),
        macKeyRef: "local:kek-0000000000000000",
      },
    };
    for (const [label, seal] of Object.entries(forgeries)) {
      const tokenId = randomId();
      const now = Date.now();
      await putRawItem(store.table, {
        ...tokenKey(tokenId),
        tokenId,
        secretHash: hashOf(secret),
        role: "admin",
        tenants: ["*"],
        createdAt: new Date(now).toISOString(),
        expiresAt: new Date(now + 3600_000).toISOString(),
        ...seal,
      });
      const before = failures();
      const logsBefore = integrityLogs().length;
      const response = await h.call("GET", read, { token: bearer(tokenId, secret), headers: reason });
      expect(response.status, label).toBe(401);
      expect(response.text, label).toBe(unknown);
      expect(response.text, label).not.toContain(SECRET_VALUE);
      expect(failures(), label).toBe(before + 1);
      const logged = integrityLogs().slice(logsBefore);
      expect(logged, label).toHaveLength(1);
      // Beyond what every line carries, the token id and nothing else.
      const standard = new Set([
        "level",
        "message",
        "timestamp",
        "service",
        "sampling_rate",
        "xray_trace_id",
      ]);
      expect(
        Object.fromEntries(Object.entries(logged[0] ?? {}).filter(([key]) => !standard.has(key))),
      ).toEqual({
        tokenId,
      });
    }
    expect(await denialDetails()).toContain("failed_integrity");
  });

  it("clearing revokedAt (UpdateItem REMOVE) keeps a revoked token refused, and it cannot be revoked again", async () => {
    const created = await h.call("POST", "/v1/tokens", {
      token: admin,
      body: { role: "runner", tenants: ["acme"], ttlSeconds: 600 },
    });
    const { id, token } = await created.json();
    expect((await h.call("DELETE", `/v1/tokens/${id}`, { token: admin })).status).toBe(204);
    await updateRaw(store.table, tokenKey(id), "REMOVE revokedAt");
    const before = failures();
    const response = await h.call("GET", read, { token, headers: reason });
    expect(response.status).toBe(401);
    expect(response.text).toBe(await unknownTokenBody());
    expect(failures()).toBe(before + 1);
    // The edited item is not sealed anew by a second revocation either.
    expect((await h.call("DELETE", `/v1/tokens/${id}`, { token: admin })).status).toBe(404);
    expect((await h.call("GET", read, { token, headers: reason })).status).toBe(401);
  });

  it.each([
    ["role raised to admin", "SET #field = :value", "role", "admin"],
    ["another tenant added", "SET #field = :value", "tenants", ["acme", "globex"]],
    ["every tenant granted", "SET #field = :value", "tenants", ["*"]],
    ["expiry pushed out", "SET #field = :value", "expiresAt", "2999-01-01T00:00:00.000Z"],
    ["secret hash swapped", "SET #field = :value", "secretHash", hashOf("f".repeat(64))],
    ["token id changed", "SET #field = :value", "tokenId", "aaaaaaaaaaaaaaaaaaaaaaaaaa"],
    ["MAC removed", "REMOVE #field", "mac", undefined],
  ])("an item with its %s is refused", async (_label, update, field, value) => {
    const token = await h.token("operator", ["acme"]);
    expect((await h.call("GET", read, { token, headers: reason })).status).toBe(200);
    await store.table.doc.send(
      new UpdateCommand({
        TableName: store.table.name,
        Key: tokenKey(idOf(token)),
        UpdateExpression: update,
        ExpressionAttributeNames: { "#field": field },
        ...(value === undefined ? {} : { ExpressionAttributeValues: { ":value": value } }),
      }),
    );
    const before = failures();
    expect((await h.call("GET", read, { token, headers: reason })).status).toBe(401);
    expect(failures()).toBe(before + 1);
  });

  it("a legitimately issued, then revoked, token behaves as before, and is not an integrity failure", async () => {
    const created = await h.call("POST", "/v1/tokens", {
      token: admin,
      body: { role: "runner", tenants: ["acme"], ttlSeconds: 600 },
    });
    expect(created.status).toBe(201);
    const { id, token } = await created.json();
    const before = failures();
    const ok = await h.call("GET", read, { token, headers: reason });
    expect(ok.status).toBe(200);
    expect((await ok.json()).value).toBe(SECRET_VALUE);
    const sealedAtIssue = (await getRawItem(store.table, tokenKey(id))).mac;
    expect((await h.call("DELETE", `/v1/tokens/${id}`, { token: admin })).status).toBe(204);
    // Revocation writes a new MAC, over the item with its revokedAt.
    const revoked = await getRawItem(store.table, tokenKey(id));
    expect(revoked.revokedAt).toEqual(expect.any(String));
    expect(revoked.mac).toMatch(/^[0-9a-f]{64}$/);
    expect(revoked.mac).not.toBe(sealedAtIssue);
    expect((await h.call("GET", read, { token, headers: reason })).status).toBe(401);
    expect((await h.call("DELETE", `/v1/tokens/${id}`, { token: admin })).status).toBe(404);
    expect(failures()).toBe(before);
    expect(await denialDetails()).toContain("revoked_token");
  });

  it("a token item with a revocation put back from before it was revoked is the residual risk: it verifies", async () => {
    // Documented in docs/api.md (tokens): a replayed copy of the item as it was is not told from the item.
    const token = await h.token("runner", ["acme"]);
    const before = await getRawItem(store.table, tokenKey(idOf(token)));
    expect((await h.call("DELETE", `/v1/tokens/${idOf(token)}`, { token: admin })).status).toBe(204);
    expect((await h.call("GET", read, { token, headers: reason })).status).toBe(401);
    await putRawItem(store.table, before);
    expect((await h.call("GET", read, { token, headers: reason })).status).toBe(200);
  });
});

describe("token items across a KEK rotation", () => {
  const second = randomKek();

  it("verify while the KEK that sealed them is configured as previous, and are refused once it is gone", async () => {
    const token = await h.token("runner", ["acme"]);
    const rotated = await startHarness({
      store,
      keyring: new LocalKeyring({ active: second, previous: [KEK] }),
    });
    expect((await rotated.call("GET", read, { token, headers: reason })).status).toBe(200);
    // New tokens are sealed under the active KEK.
    const fresh = await rotated.token("runner", ["acme"]);
    expect((await getRawItem(store.table, tokenKey(idOf(fresh)))).macKeyRef).toBe(
      `local:${kekFingerprint(second)}`,
    );
    expect((await rotated.call("GET", read, { token: fresh, headers: reason })).status).toBe(200);

    const removed = await startHarness({
      store,
      keyring: new LocalKeyring({ active: second, previous: [] }),
    });
    expect((await removed.call("GET", "/v1/tenants/acme", { token, headers: reason })).status).toBe(401);
    expect(failures(removed)).toBe(1);
    // So the local server's start-up re-issues an admin-token file whose token was sealed under it.
    expect(await removed.runtime.tokens.isActive(idOf(token))).toBe(false);
    expect(await removed.runtime.tokens.isActive(idOf(fresh))).toBe(true);
  });
});

describe("token items on the KMS keeper", () => {
  let kms: KmsEndpoint;
  let macKeyArn: string;
  const client = () =>
    new KMSClient({ endpoint: kms.endpoint, region: "us-east-1", credentials: DUMMY_CREDENTIALS });
  const instance = (keyId = macKeyArn) =>
    startHarness({
      store,
      keyring: new KmsKeyring({ client: client(), keyId: "alias/strongbox-integrity" }),
      chainKeys: new KmsChainKeys({ client: client(), keyId }),
    });

  beforeAll(async () => {
    kms = await startKmsEndpoint({ aliases: { "alias/strongbox-integrity": initialKeyId(1) } });
    macKeyArn = kms.createHmacKey();
  });
  afterAll(async () => {
    await kms.close();
  });

  it("are sealed under a key from one GenerateMac per process, named by the HMAC key's ARN", async () => {
    const kmsInstance = await instance();
    kms.resetCalls();
    const token = await kmsInstance.token("admin");
    expect(kms.calls.GenerateMac).toBe(1);
    expect((await getRawItem(store.table, tokenKey(idOf(token)))).macKeyRef).toBe(`kms:${macKeyArn}`);
    kms.resetCalls();
    // Tenant metadata reads need no data key, so every KMS call here would be the token check's.
    for (let n = 0; n < 20; n++) {
      expect((await kmsInstance.call("GET", "/v1/tenants/acme", { token })).status).toBe(200);
    }
    // The audit chain's day key is the only GenerateMac, once; the item key is already in memory.
    expect(kms.calls.GenerateMac ?? 0).toBeLessThanOrEqual(1);

    // A second instance verifies what the first sealed, re-deriving the same key.
    const cold = await instance();
    expect((await cold.call("GET", "/v1/tenants/acme", { token })).status).toBe(200);
  });

  it("refuses items sealed under another HMAC key, even one the role can use", async () => {
    const otherKey = kms.createHmacKey();
    const foreign = await instance(otherKey);
    const token = await foreign.token("admin");
    const ours = await instance();
    expect((await ours.call("GET", "/v1/tenants/acme", { token })).status).toBe(401);
    expect(failures(ours)).toBe(1);
  });
});
