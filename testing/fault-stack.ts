import { randomBytes } from "node:crypto";
import { expect } from "vitest";
import { type RuntimeConfig, readRuntimeConfig } from "../shared/runtime/config.ts";
import { createKeyring } from "../shared/runtime/container.ts";
import { type LocalDynamo, startLocalDynamo } from "../shared/storage/local-dynamo.ts";
import { createTable, ensureTableExists, type Table } from "../shared/storage/table.ts";
import { type Fault, type FaultProxy, startFaultProxy } from "./fault-proxy.ts";
import { type ApiResponse, DUMMY_CREDENTIALS, type Harness, startHarness } from "./harness.ts";
import { initialKeyId, type KmsEndpoint, startKmsEndpoint } from "./kms-endpoint.ts";

export interface FaultStack {
  readonly harness: Harness;
  /** In front of dynalite: every DynamoDB call of the service goes through it. */
  readonly dynamoProxy: FaultProxy;
  /** In front of the KMS endpoint: every KMS call of the service (keyring and audit MAC key). */
  readonly kmsProxy: FaultProxy;
  readonly kms: KmsEndpoint;
  /** The same table straight to dynalite, past the proxy: how a test checks what was really stored. */
  readonly direct: Table;
  close(): Promise<void>;
}

/**
 * The service wired as a deployment wires it (readRuntimeConfig, createKeyring, createTable on the
 * configured endpoints), with both endpoints pointing at fault proxies: dynalite and the KMS test
 * endpoint sit behind them. The KMS client takes its credentials from the environment, so the caller
 * stubs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_EC2_METADATA_DISABLED) first.
 */
export async function startFaultStack(
  options: { env?: Record<string, string>; rotation?: Partial<RuntimeConfig["rotation"]> } = {},
): Promise<FaultStack> {
  const dynamo: LocalDynamo = await startLocalDynamo();
  const kms = await startKmsEndpoint({ aliases: { "alias/strongbox-faults": initialKeyId(1) } });
  const macKeyArn = kms.createHmacKey();
  const dynamoProxy = await startFaultProxy(dynamo.endpoint);
  const kmsProxy = await startFaultProxy(kms.endpoint);
  const env = {
    TABLE_NAME: `strongbox-${randomBytes(4).toString("hex")}`,
    DYNAMODB_ENDPOINT: dynamoProxy.endpoint,
    KMS_KEY_ID: "alias/strongbox-faults",
    KMS_ENDPOINT: kmsProxy.endpoint,
    AUDIT_MAC_KEY_ID: macKeyArn,
    ...options.env,
  };
  const config = readRuntimeConfig(env);
  const { keyring, chainKeys } = createKeyring(env, config);
  const connection = { region: config.region, credentials: DUMMY_CREDENTIALS };
  const table = createTable(
    { ...connection, endpoint: dynamoProxy.endpoint, requestTimeoutMs: config.awsRequestTimeoutMs },
    config.tableName,
  );
  const direct = createTable({ ...connection, endpoint: dynamo.endpoint }, config.tableName);
  await ensureTableExists(direct);
  const harness = await startHarness({
    store: { dynamo, table },
    keyring,
    chainKeys,
    env,
    ...(options.rotation === undefined ? {} : { rotation: options.rotation }),
  });
  return {
    harness,
    dynamoProxy,
    kmsProxy,
    kms,
    direct,
    async close() {
      await Promise.all([dynamoProxy.close(), kmsProxy.close()]);
      await Promise.all([dynamo.close(), kms.close()]);
    },
  };
}

/** The typed errors a fault may end in: the store, KMS or the audit trail was unavailable. */
export const UNAVAILABLE_CODES = ["store_unavailable", "keyring_unavailable", "audit_unavailable"] as const;

/**
 * An outcome a fault may have: a success, or a 503 with the JSON error shape and one of the
 * unavailability codes. Anything else (a 500, an empty body, another code) fails the test.
 */
export async function expectSuccessOrUnavailable(
  response: ApiResponse,
  what: string,
): Promise<"ok" | string> {
  if (response.status >= 200 && response.status < 300) return "ok";
  expect(response.status, `${what}: ${response.text}`).toBe(503);
  const body = await response.json();
  expect(Object.keys(body), what).toEqual(["error"]);
  expect(typeof body.error.message, what).toBe("string");
  expect(UNAVAILABLE_CODES, `${what}: ${response.text}`).toContain(body.error.code);
  return body.error.code as string;
}

/** Every write the API acknowledged, by the version it answered with. */
export class WriteLedger {
  readonly #acknowledged: { tenant: string; name: string; version: number; value: string }[] = [];

  /** Records a write's response when it is a success; returns the version it answered. */
  async note(
    response: ApiResponse,
    tenant: string,
    name: string,
    value: string,
  ): Promise<number | undefined> {
    if (response.status !== 200) return undefined;
    const { version } = await response.json();
    expect(typeof version).toBe("number");
    this.#acknowledged.push({ tenant, name, version, value });
    return version;
  }

  get size(): number {
    return this.#acknowledged.length;
  }

  /** With faults disarmed: every acknowledged write reads back at its version with its value. */
  async expectAllReadBack(h: Harness, token: string): Promise<void> {
    const versions = new Set<string>();
    for (const { tenant, name, version, value } of this.#acknowledged) {
      const key = `${tenant}/${name}@${version}`;
      expect(versions.has(key), `${key} was acknowledged twice`).toBe(false);
      versions.add(key);
      const read = await h.call("GET", `/v1/tenants/${tenant}/secrets/${name}?version=${version}`, {
        token,
        headers: { "x-audit-reason": "fault test read-back" },
      });
      expect(read.status, `${key}: ${read.text}`).toBe(200);
      expect(await read.json(), key).toMatchObject({ name, version, value });
    }
  }
}

/** The scope's audit chain verifies intact through the API, up to its head. */
export async function expectChainIntact(h: Harness, token: string, tenant: string): Promise<number> {
  const verified = await h.call("GET", `/v1/tenants/${tenant}/audit/verify`, { token });
  expect(verified.status, verified.text).toBe(200);
  const body = await verified.json();
  expect(body, verified.text).toMatchObject({ intact: true });
  expect(body.verifiedThrough).toBe(body.head.sequence);
  return body.verifiedThrough as number;
}

/** The secret's history has no hole: its current version and every version before it read back. */
export async function expectHistoryIntact(h: Harness, token: string, tenant: string, name: string) {
  const headers = { "x-audit-reason": "fault test history" };
  const current = await h.call("GET", `/v1/tenants/${tenant}/secrets/${name}`, { token, headers });
  expect(current.status, current.text).toBe(200);
  const { version } = await current.json();
  for (let n = 1; n <= version; n += 1) {
    const read = await h.call("GET", `/v1/tenants/${tenant}/secrets/${name}?version=${n}`, {
      token,
      headers,
    });
    expect(read.status, `${name} v${n}: ${read.text}`).toBe(200);
  }
  return version as number;
}

/** The AWS SDK reads its credentials from the environment; the loopback endpoints check none. */
export const SDK_ENV = {
  AWS_ACCESS_KEY_ID: "test",
  AWS_SECRET_ACCESS_KEY: "test",
  AWS_EC2_METADATA_DISABLED: "true",
} as const;

/**
 * The faults every flow is put through; `transient` is how many attempts in a row a transient one
 * faults (fewer than the SDK's three), kept to one for throttles (whose backoff is five times longer) and hangs (each costs a timeout).
 */
export const FAULTS: readonly { readonly name: string; readonly fault: Fault; readonly transient: number }[] =
  [
    { name: "latency", fault: { kind: "latency", ms: 120 }, transient: 2 },
    {
      name: "ProvisionedThroughputExceededException",
      fault: { kind: "throttle", error: "ProvisionedThroughputExceededException" },
      transient: 1,
    },
    { name: "ThrottlingException", fault: { kind: "throttle", error: "ThrottlingException" }, transient: 1 },
    { name: "500", fault: { kind: "server-error" }, transient: 2 },
    { name: "timeout", fault: { kind: "hang" }, transient: 1 },
    { name: "dropped connection after commit", fault: { kind: "drop-after-commit" }, transient: 2 },
  ];
