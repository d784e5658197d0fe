import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { App } from "aws-cdk-lib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../infra/build.ts";
import { bootstrapToken } from "../../shared/crypto/tokens.ts";
import { type Bundle, buildBundle, type Invocation, invokeBundle } from "../../testing/bundles.ts";
import { kmsCallEvent, sqsBatch } from "../../testing/cloudtrail.ts";
import { httpApiEvent } from "../../testing/http-api-event.ts";
import { type LoopbackStage, startLoopbackStage } from "../../testing/iam/loopback-stage.ts";
import { scheduledEvent } from "../../testing/scheduled-event.ts";

// The artifact API Gateway invokes is the bundle, not the TypeScript: build it as CDK does, load it in a
// fresh Node process, and drive it with HTTP API (payload 2.0) events against dynalite, the KMS-protocol
// endpoint and the Secrets Manager-protocol endpoint, all on loopback through the real SDK clients.
// Each function gets the environment its dev template gives it (a renamed variable breaks these tests),
// and every AWS call goes through the IAM proxy, which records it; the IAM contract test
// (iam-contract.test.ts) is where the calls are held to zero denies.

let bundle: Bundle;
let stage: LoopbackStage;
let env: Record<string, string>;
let bootstrapSecret: string;
let admin: string;
const canary = `CANARY-${randomBytes(12).toString("hex")}`;

beforeAll(async () => {
  [bundle, stage] = await Promise.all([buildBundle("api"), startLoopbackStage("dev", { mode: "record" })]);
  const [secret] = stage.shape.secrets;
  bootstrapSecret = stage.secretValue(secret?.arn ?? "");
  admin = bootstrapToken(bootstrapSecret)?.token ?? "";
  env = stage.functionEnv("api");
}, 60_000);
afterAll(async () => {
  await stage.close();
});

const json = { "content-type": "application/json" };
const auth = (token: string) => ({ authorization: `Bearer ${token}` });

describe("the bundled API function", () => {
  let run: Invocation;
  beforeAll(async () => {
    run = await invokeBundle(bundle, env, [
      httpApiEvent("POST", "/v1/tenants", {
        headers: { ...json, ...auth(admin) },
        body: '{"tenantId":"acme"}',
      }),
      httpApiEvent("PUT", "/v1/tenants/acme/secrets/stripe-key", {
        headers: { ...json, ...auth(admin) },
        body: JSON.stringify({ value: canary }),
      }),
      httpApiEvent("GET", "/v1/tenants/acme/secrets/stripe-key", {
        headers: { ...auth(admin), "x-audit-reason": "bundle test" },
      }),
      httpApiEvent("POST", "/v1/tenants", {
        headers: { ...json, ...auth(admin) },
        body: '{"tenantId":"NOT VALID"}',
      }),
      httpApiEvent("PUT", "/v1/tenants/acme/secrets/stripe-key", {
        headers: { ...json, ...auth(admin) },
        body: "{",
      }),
      httpApiEvent("GET", "/v1/tenants/acme/secrets/stripe-key", {
        headers: { authorization: "Bearer nope", "x-audit-reason": "bundle test" },
      }),
    ]);
  }, 60_000);

  it("creates a tenant with the bootstrap admin token read from Secrets Manager", () => {
    expect(run.results[0]).toMatchObject({ statusCode: 201 });
  });

  it("writes a secret and reads it back", () => {
    expect(run.results[1]).toMatchObject({ statusCode: expect.any(Number) });
    expect(run.results[1].statusCode).toBeLessThan(300);
    expect(run.results[2].statusCode).toBe(200);
    expect(JSON.parse(run.results[2].body)).toMatchObject({ name: "stripe-key", version: 1, value: canary });
  });

  it("answers bad input with a 4xx JSON error", () => {
    for (const [result, status] of [
      [run.results[3], 400],
      [run.results[4], 400],
      [run.results[5], 401],
    ] as const) {
      expect(result.statusCode).toBe(status);
      expect(JSON.parse(result.body).error).toEqual({
        code: expect.any(String),
        message: expect.any(String),
      });
      expect(result.headers["content-type"]).toMatch(/application\/json/);
    }
  });

  it("used KMS for the tenant's DEK, and logged neither the value nor the token", () => {
    expect(stage.kms.calls.GenerateDataKey).toBeGreaterThan(0);
    expect(run.logs).not.toContain(canary);
    expect(run.logs).not.toContain(bootstrapSecret);
  });

  it("carries the AWS SDK inside itself rather than importing the runtime's copy", () => {
    const code = readFileSync(bundle.file, "utf8");
    expect(code).not.toMatch(/from\s*"@aws-sdk\//);
    expect(code).toContain("DynamoDBServiceException");
    expect(bundle.bytesWithoutSdk).toBeLessThan(bundle.bytes);
  });
});

describe("the bundled audit function", () => {
  let run: Invocation;
  let trail: any;
  beforeAll(async () => {
    const kekArn = stage.kms.keyArn("alias/strongbox-dev");
    const audit = await buildBundle("audit");
    run = await invokeBundle(audit, stage.functionEnv("audit"), [
      sqsBatch(
        JSON.stringify(
          kmsCallEvent({
            eventName: "Decrypt",
            keyArn: kekArn,
            caller: { role: stage.shape.functions.api.roleArn, session: "api" },
            tenant: "acme",
          }),
        ),
        JSON.stringify(
          kmsCallEvent({
            eventName: "Decrypt",
            keyArn: kekArn,
            caller: { user: "mallory" },
            tenant: "acme",
          }),
        ),
        `{"source":"aws.kms","detail":${canary}`,
      ),
    ]);
    const read = await invokeBundle(bundle, env, [
      httpApiEvent("GET", "/v1/tenants/acme/audit", { headers: auth(admin), query: "limit=50" }),
    ]);
    trail = JSON.parse(read.results[0].body);
  }, 60_000);

  const kmsCalls = () => (trail.events as any[]).filter((e) => e.action === "kms.call");

  it("records CloudTrail's KMS calls from an SQS batch and returns no batch item failure", () => {
    expect(run.results[0]).toEqual({ batchItemFailures: [] });
    expect(kmsCalls()).toHaveLength(2);
    const service = kmsCalls().find((e) => e.actor === stage.shape.functions.api.roleArn);
    expect(service?.severity).toBeUndefined();
  });

  it("flags a call by a principal that is not one of the service's roles", () => {
    const mallory = kmsCalls().find((e) => e.actor === "arn:aws:iam::111111111111:user/mallory");
    expect(mallory).toMatchObject({ severity: "high", tenantId: "acme" });
    expect(mallory?.detail).toContain("anomaly: Decrypt by arn:aws:iam::111111111111:user/mallory");
    expect(run.logs).toMatch(/"KmsAnomalies":1/);
  });

  it("drops a malformed event without echoing it and without asking SQS to retry it", () => {
    expect(run.logs).toContain("malformed CloudTrail event dropped");
    expect(run.logs).not.toContain(canary);
  });
});

describe("the bundled rotation function", () => {
  let run: Invocation;
  let after: Invocation;
  beforeAll(async () => {
    const rotation = await buildBundle("rotation");
    const queued = await invokeBundle(bundle, env, [
      httpApiEvent("POST", "/v1/tenants/acme/rotate-dek", {
        headers: { ...json, ...auth(admin) },
        body: "{}",
      }),
    ]);
    expect(queued.results[0].statusCode).toBeLessThan(300);
    run = await invokeBundle(rotation, stage.functionEnv("rotation"), [
      scheduledEvent("arn:aws:events:us-east-1:111111111111:rule/strongbox-dev-rotation-Schedule"),
      { source: "aws.s3", "detail-type": "Object Created", detail: {} },
    ]);
    after = await invokeBundle(bundle, env, [
      httpApiEvent("GET", "/v1/tenants/acme/secrets/stripe-key", {
        headers: { ...auth(admin), "x-audit-reason": "after rotation" },
      }),
    ]);
  }, 60_000);

  it("runs the scheduled work: the tenant's secrets are re-sealed under the new DEK", () => {
    const summary = run.results[0];
    expect(summary.outOfTime).toBe(false);
    const sweep = summary.sweeps.find((s: { tenantId: string }) => s.tenantId === "acme");
    expect(sweep?.resealed).toBeGreaterThanOrEqual(1);
    expect(sweep?.stoppedBecause).not.toBe("failed");
  });

  it("ignores an event that is not an EventBridge schedule", () => {
    expect(run.results[1]).toEqual({ skipped: "not an EventBridge scheduled event" });
  });

  it("leaves the secret readable, with its value, and logs neither value nor token", () => {
    expect(after.results[0].statusCode).toBe(200);
    expect(JSON.parse(after.results[0].body).value).toBe(canary);
    expect(run.logs).not.toContain(canary);
    expect(run.logs).not.toContain(bootstrapSecret);
  });
});

describe("the functions' AWS calls", () => {
  it("went through the IAM proxy, each function signing as its own role", () => {
    const principals = new Set(stage.proxy.calls.map((call) => call.principal));
    expect([...principals].sort()).toEqual(["api", "audit", "rotation"]);
    expect(
      stage.proxy.calls.some((c) => c.principal === "api" && c.action === "secretsmanager:GetSecretValue"),
    ).toBe(true);
  });
});

describe("the bundling options", () => {
  it("produce the same bytes as the NodejsFunction CDK deploys", async () => {
    const app = new App({ context: { "aws:cdk:bundling-stacks": ["dev/Api"] } });
    buildApp(app, { stages: ["dev"], env: {}, nag: false });
    const out = app.synth().directory;
    const assets = readdirSync(out).filter((name) => name.startsWith("asset."));
    const deployed = assets
      .map((name) => join(out, name, "index.mjs"))
      .map((file) => {
        try {
          return readFileSync(file, "utf8");
        } catch {
          return undefined;
        }
      })
      .filter((code) => code !== undefined && code.length > 10_000);
    expect(deployed).toHaveLength(1);
    expect(deployed[0]).toBe(readFileSync(bundle.file, "utf8"));
  }, 60_000);
});
