import { KMSClient } from "@aws-sdk/client-kms";
import type { Context } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { ingestBatch } from "../../functions/audit/ingest.ts";
import { KmsChainKeys } from "../../shared/crypto/chain-keys.ts";
import { KmsKeyring } from "../../shared/crypto/kms-keyring.ts";
import type { ChainedAuditRecord } from "../../shared/domain/audit-chain.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { ACCOUNT, kmsCallEvent, sqsBatch } from "../../testing/cloudtrail.ts";
import { auditAppends, injectFault } from "../../testing/faults.ts";
import { DUMMY_CREDENTIALS, type Harness, startHarness, startStore } from "../../testing/harness.ts";
import { initialKeyId, type KmsEndpoint, startKmsEndpoint } from "../../testing/kms-endpoint.ts";

// KMS cannot run here: the real KMS client talks to the loopback KMS-protocol endpoint, which also
// counts every call, so the test can show that ingestion makes none but the chain's daily GenerateMac.
const API_ROLE = `arn:aws:iam::${ACCOUNT}:role/strongbox-prod-api`;
const ROTATION_ROLE = `arn:aws:iam::${ACCOUNT}:role/strongbox-prod-rotation`;
let kms: KmsEndpoint;
let store: { dynamo: LocalDynamo; table: Table };
let h: Harness;
let kekArn: string;
let macKeyArn: string;
let otherKeyArn: string;

const client = () =>
  new KMSClient({ endpoint: kms.endpoint, region: "us-east-1", credentials: DUMMY_CREDENTIALS });
const body = (event: unknown) => JSON.stringify(event);
const silent = { info() {}, warn() {}, error() {} } as any;

async function trail(scope: string): Promise<ChainedAuditRecord[]> {
  const admin = await h.token("admin");
  const path = scope === "_system" ? "/v1/audit" : `/v1/tenants/${scope}/audit`;
  const response = await h.call("GET", `${path}?action=kms.call&limit=999`, { token: admin });
  return (await response.json()).events;
}

beforeAll(async () => {
  kms = await startKmsEndpoint({ keys: 2, aliases: { "alias/strongbox-prod": initialKeyId(1) } });
  kekArn = kms.keyArn("alias/strongbox-prod");
  otherKeyArn = kms.keyArn(initialKeyId(2));
  macKeyArn = kms.createHmacKey();
  store = await startStore();
  h = await startHarness({
    store,
    keyring: new KmsKeyring({ client: client(), keyId: "alias/strongbox-prod" }),
    chainKeys: new KmsChainKeys({ client: client(), keyId: macKeyArn }),
    env: {
      WATCHED_KMS_KEY_ARNS: `${kekArn}, ${macKeyArn}`,
      SERVICE_ROLE_ARNS: `${API_ROLE},${ROTATION_ROLE}`,
    },
  });
  const admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } })).status).toBe(
    201,
  );
});
afterAll(async () => {
  await kms.close();
  await store.dynamo.close();
});
beforeEach(() => kms.resetCalls());

describe("CloudTrail KMS events into the audit trail", () => {
  it("a GenerateDataKey by the service role is recorded for the tenant in its context, not flagged", async () => {
    const anomaliesBefore = h.runtime.metrics.count("KmsAnomalies");
    const event = kmsCallEvent({
      eventName: "GenerateDataKey",
      caller: { role: API_ROLE, session: "strongbox-prod-api" },
      keyArn: kekArn,
      requestParameters: {
        keyId: "alias/strongbox-prod",
        keySpec: "AES_256",
        encryptionContext: { "strongbox:tenant": "acme", "strongbox:dek-version": "2" },
      },
    });
    const { batchItemFailures, summary } = await ingestBatch(h.runtime, sqsBatch(body(event)), silent);
    expect(batchItemFailures).toEqual([]);
    expect(summary).toMatchObject({ recorded: 1, anomalies: 0, malformed: 0 });
    const [record] = await trail("acme");
    expect(record).toMatchObject({
      tenantId: "acme",
      action: "kms.call",
      outcome: "success",
      role: "aws",
      actor: API_ROLE,
      requestId: (event.detail as { eventID: string }).eventID,
    });
    expect(record?.detail).toContain(`GenerateDataKey on ${kekArn}`);
    expect(record).not.toHaveProperty("severity");
    expect(h.runtime.metrics.count("KmsAnomalies")).toBe(anomaliesBefore);
  });

  it("a Decrypt by a foreign principal is a high-severity record for that tenant and a KmsAnomalies", async () => {
    const anomaliesBefore = h.runtime.metrics.count("KmsAnomalies");
    const event = kmsCallEvent({
      eventName: "Decrypt",
      caller: { user: "mallory" },
      keyArn: kekArn,
      requestParameters: {
        encryptionAlgorithm: "SYMMETRIC_DEFAULT",
        encryptionContext: { "strongbox:tenant": "acme", "strongbox:dek-version": "1" },
      },
    });
    const { summary } = await ingestBatch(h.runtime, sqsBatch(body(event)), silent);
    expect(summary).toMatchObject({ recorded: 1, anomalies: 1 });
    const [record] = await trail("acme");
    expect(record).toMatchObject({ severity: "high", actor: `arn:aws:iam::${ACCOUNT}:user/mallory` });
    expect(record?.detail).toContain("anomaly: Decrypt by arn:aws:iam::111122223333:user/mallory");
    expect(h.runtime.metrics.count("KmsAnomalies")).toBe(anomaliesBefore + 1);
  });

  it("another role's session is judged by the role that issued it, not by its session ARN", async () => {
    const event = kmsCallEvent({
      eventName: "Decrypt",
      caller: {
        role: `arn:aws:iam::${ACCOUNT}:role/strongbox-prod-api-lookalike`,
        session: "strongbox-prod-api",
      },
      keyArn: kekArn,
      requestParameters: { encryptionContext: { "strongbox:tenant": "acme", "strongbox:dek-version": "1" } },
    });
    const { summary } = await ingestBatch(h.runtime, sqsBatch(body(event)), silent);
    expect(summary.anomalies).toBe(1);
  });

  it("a ScheduleKeyDeletion on a watched key is flagged whoever calls it, in the system trail", async () => {
    const anomaliesBefore = h.runtime.metrics.count("KmsAnomalies");
    const event = kmsCallEvent({
      eventName: "ScheduleKeyDeletion",
      caller: { role: ROTATION_ROLE, session: "rotation" },
      keyArn: kekArn,
      requestParameters: { keyId: kekArn, pendingWindowInDays: 7 },
    });
    const { summary } = await ingestBatch(h.runtime, sqsBatch(body(event)), silent);
    expect(summary).toMatchObject({ recorded: 1, anomalies: 1 });
    const [record] = await trail("_system");
    expect(record).toMatchObject({ tenantId: "_system", severity: "high", actor: ROTATION_ROLE });
    expect(record?.detail).toContain("anomaly: ScheduleKeyDeletion on a key of the service");
    expect(h.runtime.metrics.count("KmsAnomalies")).toBe(anomaliesBefore + 1);
  });

  it.each(["DisableKey", "PutKeyPolicy", "CreateGrant"])(
    "%s on a watched key is flagged too",
    async (eventName) => {
      const event = kmsCallEvent({ eventName, caller: { user: "ops" }, keyArn: kekArn });
      expect((await ingestBatch(h.runtime, sqsBatch(body(event)), silent)).summary.anomalies).toBe(1);
    },
  );

  it("an encryption context naming an unknown tenant is flagged, in the system trail, not a new chain", async () => {
    const event = kmsCallEvent({
      eventName: "GenerateDataKey",
      caller: { role: API_ROLE, session: "api" },
      keyArn: kekArn,
      requestParameters: { encryptionContext: { "strongbox:tenant": "no-such-tenant" } },
    });
    const { summary } = await ingestBatch(h.runtime, sqsBatch(body(event)), silent);
    expect(summary.anomalies).toBe(1);
    const [record] = await trail("_system");
    expect(record?.detail).toContain("anomaly: encryption context names an unknown tenant");
    expect((await h.runtime.chainVerifier.verify("no-such-tenant")).records).toBe(0);
  });

  it("a call on a key that is not watched is ignored", async () => {
    const event = kmsCallEvent({ eventName: "Decrypt", caller: { user: "someone" }, keyArn: otherKeyArn });
    const { summary } = await ingestBatch(h.runtime, sqsBatch(body(event)), silent);
    expect(summary).toMatchObject({ recorded: 0, ignored: 1, anomalies: 0 });
  });

  it("malformed events are dropped and counted without failing the batch; the good one is recorded", async () => {
    const good = kmsCallEvent({
      eventName: "GenerateDataKey",
      caller: { role: API_ROLE, session: "api" },
      keyArn: kekArn,
      requestParameters: { encryptionContext: { "strongbox:tenant": "acme" } },
    });
    const warn = vi.fn();
    const logger = { info() {}, error() {}, warn } as any;
    const batch = sqsBatch(
      "{not json",
      body({ ...good, source: "aws.s3" }),
      body({ ...good, detail: { ...(good.detail as object), eventTime: "yesterday" } }),
      body({ "detail-type": "AWS API Call via CloudTrail" }),
      body(good),
    );
    const { batchItemFailures, summary } = await ingestBatch(h.runtime, batch, logger);
    expect(batchItemFailures).toEqual([]);
    expect(summary).toMatchObject({ malformed: 4, recorded: 1 });
    // Logged by message id only: a malformed body may hold anything.
    expect(warn).toHaveBeenCalledTimes(4);
    for (const [, fields] of warn.mock.calls) expect(Object.keys(fields)).toEqual(["messageId"]);
  });

  it("an event that cannot be recorded (store down) is returned as a batch item failure, for retry", async () => {
    const fault = injectFault(h.table, auditAppends);
    const event = kmsCallEvent({ eventName: "DisableKey", caller: { user: "ops" }, keyArn: kekArn });
    const batch = sqsBatch(body(event));
    try {
      const { batchItemFailures, summary } = await ingestBatch(h.runtime, batch, silent);
      expect(batchItemFailures).toEqual([{ itemIdentifier: batch.Records[0]?.messageId }]);
      expect(summary.retried).toBe(1);
    } finally {
      fault.remove();
    }
  });

  it("never calls KMS Decrypt while ingesting, and its own GenerateMac event does not loop", async () => {
    const fresh = await startHarness({
      store,
      keyring: new KmsKeyring({ client: client(), keyId: "alias/strongbox-prod" }),
      chainKeys: new KmsChainKeys({ client: client(), keyId: macKeyArn }),
      env: { WATCHED_KMS_KEY_ARNS: `${kekArn},${macKeyArn}`, SERVICE_ROLE_ARNS: API_ROLE },
    });
    kms.resetCalls();
    const events = Array.from({ length: 20 }, (_, i) =>
      body(
        kmsCallEvent({
          eventName: i % 2 === 0 ? "Decrypt" : "GenerateDataKey",
          caller: { role: API_ROLE, session: `api-${i}` },
          keyArn: kekArn,
          requestParameters: { encryptionContext: { "strongbox:tenant": "acme" } },
        }),
      ),
    );
    await ingestBatch(fresh.runtime, sqsBatch(...events), silent);
    // The chain's key for today: one GenerateMac for the instance, none per event.
    expect(kms.calls).toEqual({ GenerateMac: 1 });
    // CloudTrail then reports that GenerateMac on the MAC key; ingesting it needs no KMS call at all.
    const own = kmsCallEvent({
      eventName: "GenerateMac",
      caller: { role: API_ROLE, session: "audit" },
      keyArn: macKeyArn,
      requestParameters: { keyId: macKeyArn, macAlgorithm: "HMAC_SHA_256" },
    });
    const { summary } = await ingestBatch(fresh.runtime, sqsBatch(body(own)), silent);
    expect(summary).toMatchObject({ recorded: 1, anomalies: 0 });
    expect(kms.calls).toEqual({ GenerateMac: 1 });
    expect((await fresh.runtime.chainVerifier.verify("acme")).intact).toBe(true);
  });
});

describe("functions/audit/handler.ts", () => {
  it("builds its runtime from the environment and answers an SQS batch with ReportBatchItemFailures", async () => {
    // The service's own keys: its records wait for a sequencer, which takes only records made with them.
    vi.stubEnv("KMS_KEY_ID", "alias/strongbox-prod");
    vi.stubEnv("AUDIT_MAC_KEY_ID", macKeyArn);
    vi.stubEnv("KMS_ENDPOINT", kms.endpoint);
    vi.stubEnv("DYNAMODB_ENDPOINT", store.dynamo.endpoint);
    vi.stubEnv("TABLE_NAME", store.table.name);
    vi.stubEnv("AWS_ACCESS_KEY_ID", DUMMY_CREDENTIALS.accessKeyId);
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", DUMMY_CREDENTIALS.secretAccessKey);
    vi.stubEnv("WATCHED_KMS_KEY_ARNS", kekArn);
    vi.stubEnv("SERVICE_ROLE_ARNS", API_ROLE);
    vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "true");
    try {
      const { handler } = await import("../../functions/audit/handler.ts");
      const event = kmsCallEvent({ eventName: "PutKeyPolicy", caller: { user: "ops" }, keyArn: kekArn });
      const response = await handler(sqsBatch(body(event), "garbage"), {} as Context);
      expect(response).toEqual({ batchItemFailures: [] });
      const [record] = await trail("_system");
      expect(record).toMatchObject({
        requestId: (event.detail as { eventID: string }).eventID,
        severity: "high",
      });
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
