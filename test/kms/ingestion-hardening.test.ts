import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { KmsApiCall } from "../../shared/domain/cloudtrail.ts";
import { kmsApiCallEventSchema } from "../../shared/domain/cloudtrail.ts";
import { ConfigError } from "../../shared/domain/errors.ts";
import { readRuntimeConfig, requireKmsIngestionConfig } from "../../shared/runtime/config.ts";
import { ACCOUNT, kmsCallEvent, REGION } from "../../testing/cloudtrail.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";

/*
 * Ingestion needs no KMS: it reads the event and the tenant table only, so these cases run against a
 * local keyring and dynalite, through the runtime's real ingester.
 */

const KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab";
const KEK_ARN = `arn:aws:kms:${REGION}:${ACCOUNT}:key/${KEY_ID}`;
const MAC_KEY_ARN = `arn:aws:kms:${REGION}:${ACCOUNT}:key/0987dcba-09fe-87dc-65ba-ab0987654321`;
const API_ROLE = `arn:aws:iam::${ACCOUNT}:role/strongbox-prod-api`;
let h: Harness;

/** The CloudTrail record of a call, parsed as ingestion parses it, with any field overridden. */
function call(
  options: Parameters<typeof kmsCallEvent>[0],
  override: (detail: Record<string, unknown>) => Record<string, unknown> = (detail) => detail,
): KmsApiCall {
  const event = kmsCallEvent(options);
  const detail = override(event.detail as Record<string, unknown>);
  return kmsApiCallEventSchema.parse({ ...event, detail }).detail;
}

beforeAll(async () => {
  h = await startHarness({
    env: { WATCHED_KMS_KEY_ARNS: `${KEK_ARN},${MAC_KEY_ARN}`, SERVICE_ROLE_ARNS: API_ROLE },
  });
});
afterAll(async () => {
  await h.close();
});

describe("operations that use a watched key, by a principal outside SERVICE_ROLE_ARNS", () => {
  it.each([
    "GenerateMac",
    "VerifyMac",
    "Encrypt",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
  ])("%s by a foreign principal is flagged as an anomaly", async (eventName) => {
    const result = await h.runtime.kmsEvents.ingest(
      call({ eventName, caller: { user: "mallory" }, keyArn: MAC_KEY_ARN }),
    );
    expect(result).toMatchObject({
      status: "recorded",
      anomalies: [expect.stringContaining(`${eventName} by arn:aws:iam::${ACCOUNT}:user/mallory`)],
    });
  });

  it("GenerateMac on the audit key by the service's own role is not flagged", async () => {
    const result = await h.runtime.kmsEvents.ingest(
      call({ eventName: "GenerateMac", caller: { role: API_ROLE, session: "api" }, keyArn: MAC_KEY_ARN }),
    );
    expect(result).toEqual({ status: "recorded", scope: "_system", anomalies: [] });
  });
});

describe("KmsAnomalies", () => {
  it("an event with two anomalies is counted with one increment of two", async () => {
    const increment = vi.spyOn(h.runtime.metrics, "increment");
    const result = await h.runtime.kmsEvents.ingest(
      call({
        eventName: "Decrypt",
        caller: { user: "mallory" },
        keyArn: KEK_ARN,
        requestParameters: { encryptionContext: { "strongbox:tenant": "no-such-tenant" } },
      }),
    );
    expect(result).toMatchObject({ status: "recorded", anomalies: [expect.any(String), expect.any(String)] });
    expect(increment.mock.calls.filter(([name]) => name === "KmsAnomalies")).toEqual([["KmsAnomalies", 2]]);
    increment.mockRestore();
  });
});

describe("watched keys are matched by every form CloudTrail names them by", () => {
  const withoutResources = (detail: Record<string, unknown>) => {
    const { resources: _resources, ...rest } = detail;
    return rest;
  };

  it.each([
    ["the bare key id", KEY_ID],
    ["the key ARN", KEK_ARN],
  ])(
    "a call naming the key by %s in requestParameters, without resources[], is matched",
    async (_label, keyId) => {
      const result = await h.runtime.kmsEvents.ingest(
        call(
          {
            eventName: "Decrypt",
            caller: { user: "mallory" },
            keyArn: KEK_ARN,
            requestParameters: { keyId },
          },
          withoutResources,
        ),
      );
      expect(result).toMatchObject({
        status: "recorded",
        anomalies: [expect.stringContaining("Decrypt by")],
      });
      const [record] = await systemKmsRecords();
      expect(record?.detail).toContain(`Decrypt on ${KEK_ARN}`);
    },
  );

  it("a call on a key that is not watched, by id, is ignored", async () => {
    const result = await h.runtime.kmsEvents.ingest(
      call(
        {
          eventName: "Decrypt",
          caller: { user: "mallory" },
          keyArn: KEK_ARN,
          requestParameters: { keyId: "ffffffff-0000-0000-0000-000000000000" },
        },
        withoutResources,
      ),
    );
    expect(result).toEqual({ status: "ignored" });
  });
});

async function systemKmsRecords() {
  const admin = await h.token("admin");
  const response = await h.call("GET", "/v1/audit?action=kms.call&limit=1", { token: admin });
  return (await response.json()).events as { detail?: string }[];
}

describe("the audit function's configuration", () => {
  it.each([
    ["WATCHED_KMS_KEY_ARNS", { SERVICE_ROLE_ARNS: API_ROLE }],
    ["WATCHED_KMS_KEY_ARNS", { WATCHED_KMS_KEY_ARNS: " , ", SERVICE_ROLE_ARNS: API_ROLE }],
    ["SERVICE_ROLE_ARNS", { WATCHED_KMS_KEY_ARNS: KEK_ARN }],
  ])("refuses to start with %s empty, naming the variable", (variable, env) => {
    expect(() => requireKmsIngestionConfig(readRuntimeConfig(env))).toThrow(
      expect.objectContaining({ name: "ConfigError", variable }),
    );
    expect(() => requireKmsIngestionConfig(readRuntimeConfig(env))).toThrow(ConfigError);
  });

  it("the audit handler module refuses to load without WATCHED_KMS_KEY_ARNS", async () => {
    vi.resetModules();
    vi.stubEnv("WATCHED_KMS_KEY_ARNS", "");
    vi.stubEnv("SERVICE_ROLE_ARNS", API_ROLE);
    try {
      await expect(import("../../functions/audit/handler.ts")).rejects.toMatchObject({
        variable: "WATCHED_KMS_KEY_ARNS",
      });
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
