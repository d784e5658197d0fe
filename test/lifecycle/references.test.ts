import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCredentialRef } from "../../shared/domain/references.ts";
import { DUMMY_CREDENTIALS, type Harness, startHarness } from "../../testing/harness.ts";
import {
  type SecretsManagerEndpoint,
  startSecretsManagerEndpoint,
} from "../../testing/secrets-manager-endpoint.ts";

/*
 * CredentialRefs (seed 002 §1.1, §3.2): a secret that holds `aws-sm://…` and is resolved at read time
 * through the real Secrets Manager client, against the loopback Secrets Manager endpoint.
 */

const TENANT = "acme";
const REASON = { "x-audit-reason": "reference test" };
const SM_VALUE = "SM-HELD-VALUE-canary-71c2";
let h: Harness;
let sm: SecretsManagerEndpoint;
let admin: string;
let plainArn: string;
let jsonArn: string;
const rotationDue = new Date(Date.now() + 30 * 24 * 3600 * 1000);

const path = (name: string) => `/v1/tenants/${TENANT}/secrets/${name}`;
const putRef = (name: string, ref: string) => h.call("PUT", path(name), { token: admin, body: { ref } });
const read = (name: string, token = admin) => h.call("GET", path(name), { token, headers: REASON });

beforeAll(async () => {
  sm = await startSecretsManagerEndpoint();
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: "true",
  });
  plainArn = sm.putSecret("shared/openai", SM_VALUE);
  sm.setNextRotation(plainArn, rotationDue);
  jsonArn = sm.putSecret("shared/db", JSON.stringify({ username: "app", password: `${SM_VALUE}-pw` }));
  h = await startHarness({ env: { SECRETS_MANAGER_ENDPOINT: sm.endpoint, REFERENCE_CACHE_SECONDS: "60" } });
  admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } })).status).toBe(
    201,
  );
});
afterAll(async () => {
  await h?.close();
  await sm?.close();
});

describe("parsing a reference", () => {
  it("takes an ARN or a name, a #jsonKey and a ?versionStage", () => {
    expect(parseCredentialRef(`aws-sm://${jsonArn}#password?versionStage=AWSPREVIOUS`)).toEqual({
      uri: `aws-sm://${jsonArn}#password?versionStage=AWSPREVIOUS`,
      secretId: jsonArn,
      jsonKey: "password",
      versionStage: "AWSPREVIOUS",
    });
    expect(parseCredentialRef("aws-sm://shared/openai")).toEqual({
      uri: "aws-sm://shared/openai",
      secretId: "shared/openai",
    });
  });
});

describe("a secret holding a reference", () => {
  it("is resolved on read through Secrets Manager, with the referenced secret's rotation date", async () => {
    const written = await putRef("openai", `aws-sm://${plainArn}`);
    expect(written.status).toBe(200);
    const response = await read("openai");
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body).toMatchObject({
      name: "openai",
      version: 1,
      value: SM_VALUE,
      reference: `aws-sm://${plainArn}`,
    });
    expect(Math.abs(Date.parse(body.rotationDueAt) - rotationDue.getTime())).toBeLessThan(1000);
  });

  it("resolves a #jsonKey of a JSON secret, and names the reference when the key is missing (422)", async () => {
    await putRef("db-password", `aws-sm://${jsonArn}#password`);
    expect(await (await read("db-password")).json()).toMatchObject({ value: `${SM_VALUE}-pw` });
    await putRef("db-missing", `aws-sm://${jsonArn}#nope`);
    const missing = await read("db-missing");
    expect(missing.status).toBe(422);
    const body = await missing.json();
    expect(body.error.code).toBe("reference_not_found");
    expect(body.error.message).toContain(`aws-sm://${jsonArn}#nope`);
    expect(missing.text).not.toContain(SM_VALUE);
  });

  it("is listed as a reference with its rotation date, and listing never resolves it", async () => {
    const before = sm.calls.GetSecretValue ?? 0;
    const list = await h.call("GET", `/v1/tenants/${TENANT}/secrets`, { token: admin });
    expect(list.status).toBe(200);
    expect(sm.calls.GetSecretValue ?? 0).toBe(before);
    expect(list.text).not.toContain(SM_VALUE);
    const entry = (await list.json()).secrets.find((s: { name: string }) => s.name === "openai");
    expect(entry).toMatchObject({ reference: `aws-sm://${plainArn}`, rotationDueAt: expect.any(String) });
    expect(Math.abs(Date.parse(entry.rotationDueAt) - rotationDue.getTime())).toBeLessThan(1000);
  });

  it("caches a resolved value briefly, never past the referenced secret's rotation", async () => {
    const soonArn = sm.putSecret("shared/rotating", "first");
    await putRef("rotating", `aws-sm://${soonArn}`);
    const before = sm.calls.GetSecretValue ?? 0;
    expect(await (await read("rotating")).json()).toMatchObject({ value: "first" });
    expect(await (await read("rotating")).json()).toMatchObject({ value: "first" });
    expect(sm.calls.GetSecretValue).toBe(before + 1);
    // The referenced secret is due to rotate now, so the next read asks Secrets Manager again.
    sm.putSecret("shared/rotating", "second", soonArn);
    sm.setNextRotation(soonArn, new Date(Date.now() - 1000));
    const cachedUntilRotation = await h.call("PUT", path("rotating"), {
      token: admin,
      body: { ref: `aws-sm://${soonArn}` },
    });
    expect(cachedUntilRotation.status).toBe(200);
    expect(await (await read("rotating")).json()).toMatchObject({ value: "first" });
    // The first entry was cached for the configured minute; a fresh resolver (another instance) sees the new value.
    const other = await startHarness({
      keyring: h.runtime.keyring,
      store: { dynamo: h.dynamo, table: h.table },
      env: { SECRETS_MANAGER_ENDPOINT: sm.endpoint },
    });
    const fresh = await other.call("GET", path("rotating"), { token: admin, headers: REASON });
    expect(fresh.text).toContain('"value":"second"');
    // Due in the past: that instance cached nothing, so every read goes to Secrets Manager.
    const calls = sm.calls.GetSecretValue ?? 0;
    await other.call("GET", path("rotating"), { token: admin, headers: REASON });
    expect(sm.calls.GetSecretValue).toBe(calls + 1);
  });

  it("is read under the same role checks and audit as a value: a runner of another tenant is refused", async () => {
    const stranger = await h.token("runner", ["globex"]);
    expect((await read("openai", stranger)).status).toBe(403);
    const events = (
      await (
        await h.call("GET", `/v1/tenants/${TENANT}/audit?secret=openai&limit=999`, { token: admin })
      ).json()
    ).events as { action: string; outcome: string; detail?: string; reason?: string }[];
    const reads = events.filter((e) => e.action === "secret.read" && e.outcome === "success");
    expect(reads.length).toBeGreaterThan(0);
    expect(reads[0]).toMatchObject({ reason: "reference test", detail: `reference aws-sm://${plainArn}` });
    expect(JSON.stringify(events)).not.toContain(SM_VALUE);
  });

  it("maps Secrets Manager's errors to typed ones that name the reference and echo no value", async () => {
    const gone = sm.putSecret("shared/flaky", "flaky-value");
    await putRef("flaky", `aws-sm://${gone}`);
    sm.failNext("AccessDeniedException", 2);
    const denied = await read("flaky");
    expect(denied.status).toBe(502);
    expect((await denied.json()).error).toMatchObject({ code: "reference_denied" });
    // The SDK retries throttling (three attempts for each of the two calls).
    sm.failNext("ThrottlingException", 6);
    const throttled = await read("flaky");
    expect(throttled.status).toBe(503);
    const body = await throttled.json();
    expect(body.error.code).toBe("reference_unavailable");
    expect(body.error.message).toContain(`aws-sm://${gone}`);
    expect(throttled.text).not.toContain("flaky-value");
  });

  it("refuses a reference to a secret that does not exist at write time, 422 naming it", async () => {
    const response = await putRef("absent", "aws-sm://shared/does-not-exist");
    expect(response.status).toBe(422);
    expect((await response.json()).error).toMatchObject({
      code: "reference_not_found",
      message: expect.stringContaining("aws-sm://shared/does-not-exist"),
    });
  });

  it("refuses an unsupported scheme or a malformed ARN with 400 naming the reference", async () => {
    for (const ref of [
      "vault://kv/clients/acme",
      "aws-sm://arn:aws:secretsmanager:us-east-1:12:secret:x",
      "aws-sm://shared/openai?stage=AWSCURRENT",
      "aws-sm://",
    ]) {
      const response = await putRef("bad-ref", ref);
      expect(response.status).toBe(400);
      const body = await response.json();
      expect(body.error.code).toBe("invalid_request");
      expect(body.error.message).toContain(ref);
    }
    const both = await h.call("PUT", path("bad-ref"), {
      token: admin,
      body: { ref: "aws-sm://x", value: "y" },
    });
    expect(both.status).toBe(400);
    expect((await read("bad-ref")).status).toBe(404);
  });
});
