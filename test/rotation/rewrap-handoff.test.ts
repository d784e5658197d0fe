import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrapToken } from "../../shared/crypto/tokens.ts";
import { type Bundle, buildBundle, coldStart, invokeBundle } from "../../testing/bundles.ts";
import { kmsCallEvent, sqsBatch } from "../../testing/cloudtrail.ts";

import { httpApiEvent } from "../../testing/http-api-event.ts";
import type { DeployedKey } from "../../testing/iam/deployed-shape.ts";
import { addKeyLike, type LoopbackStage, startLoopbackStage } from "../../testing/iam/loopback-stage.ts";
import { asWrittenBeforeTheDirectory } from "../../testing/rotation-fixtures.ts";
import { scheduledEvent } from "../../testing/scheduled-event.ts";

// The bundled API and rotation functions, each in a fresh process as Lambda runs them, with the
// environments their dev templates give them, against the stage's AWS on loopback (dynalite and the
// KMS-, Secrets Manager- and EventBridge-protocol stand-ins behind the IAM proxy). The steps build on
// each other, in order: a table of an earlier version is backfilled by the rotation function; an API
// that lacks a KEK the table needs refuses its cold start; then the KEK change, whose re-wrap the API
// hands to the rotation function through EventBridge.

const STAGE = "dev";
const BUS = `strongbox-${STAGE}`;
const canary = `CANARY-${randomBytes(12).toString("hex")}`;

let api: Bundle;
let rotation: Bundle;
let stage: LoopbackStage;
let auth: { authorization: string };
/** The template's KEK, which the functions are moved to. */
let kekArn: string;
/** The KEK the stage started on, before the change; the templates hold one KEK, so it is added. */
let previous: DeployedKey;
/** The functions as first deployed: the previous KEK active. */
let before: Record<string, string>;
/** After the KEK change: the template's KEK active, the previous one configured beside it. */
let after: Record<string, string>;

beforeAll(async () => {
  [api, rotation, stage] = await Promise.all([
    buildBundle("api"),
    buildBundle("rotation"),
    startLoopbackStage(STAGE),
  ]);
  const [secret] = stage.shape.secrets;
  auth = { authorization: `Bearer ${bootstrapToken(stage.secretValue(secret?.arn ?? ""))?.token ?? ""}` };
  after = stage.functionEnv("api");
  kekArn = after.KMS_KEY_ID ?? "";
  const kek = stage.contract.keys.find((key) => key.arn === kekArn);
  if (kek === undefined) throw new Error("the api function's KMS_KEY_ID names no key of the stage");
  previous = addKeyLike(stage, kek, "PreviousKek");
  before = { ...after, KMS_KEY_ID: previous.arn };
  after = { ...after, KMS_KEY_ID_PREVIOUS: previous.arn };
  const seeded = await invokeBundle(api, before, [
    ...["acme", "globex"].map((tenantId) =>
      httpApiEvent("POST", "/v1/tenants", {
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ tenantId }),
      }),
    ),
    httpApiEvent("PUT", "/v1/tenants/acme/secrets/stripe-key", {
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ value: canary }),
    }),
  ]);
  expect(seeded.results.map((result) => result.statusCode)).toEqual([201, 201, 200]);
}, 120_000);
afterAll(async () => {
  await stage?.close();
});

const getKek = () => httpApiEvent("GET", "/v1/kek", { headers: auth });
const body = (result: { body: string }) => JSON.parse(result.body);

/** What EventBridge delivers to a rule's Lambda target for an entry PutEvents accepted. */
function delivered(entry: { Source?: string; DetailType?: string; Detail?: string }) {
  return {
    version: "0",
    id: randomBytes(8).toString("hex"),
    "detail-type": entry.DetailType,
    source: entry.Source,
    account: "111122223333",
    time: "2026-11-24T03:00:00Z",
    region: "us-east-1",
    resources: [],
    detail: JSON.parse(entry.Detail ?? "{}"),
  };
}

describe("a table written before the tenant directory, on the bundled functions", () => {
  it("the API answers 503 directory_backfill_pending, the rotation function's scheduled run backfills it, then the API counts every tenant", async () => {
    await asWrittenBeforeTheDirectory(stage.table, ["acme"]);
    const refused = await invokeBundle(api, before, [getKek()]);
    expect(refused.results[0].statusCode).toBe(503);
    expect(body(refused.results[0]).error.code).toBe("directory_backfill_pending");

    const run = await invokeBundle(rotation, { ...stage.functionEnv("rotation"), KMS_KEY_ID: previous.arn }, [
      scheduledEvent(`arn:aws:events:us-east-1:111122223333:rule/strongbox-${STAGE}-rotation`),
    ]);
    expect(run.results[0].due).toMatchObject({ scanComplete: true });
    expect(run.logs).toContain("tenant directory backfilled");

    const counted = await invokeBundle(api, before, [getKek()]);
    expect(counted.results[0].statusCode).toBe(200);
    expect(body(counted.results[0]).keks).toEqual([
      expect.objectContaining({ kekId: previous.arn, dataKeys: 2 }),
    ]);
  }, 60_000);
});

describe("a bundled API cold start on a table that needs a KEK it is not given", () => {
  it("fails its init with the fingerprint message and KekConfigured 0, and never serves", async () => {
    const started = await coldStart(api, { ...after, KMS_KEY_ID_PREVIOUS: "" });
    expect(started.code).not.toBe(0);
    const output = started.stdout + started.stderr;
    expect(output).toContain("refusing to start");
    expect(output).toContain(
      `DEKs in this table were wrapped by KEK ${previous.arn}; configured KEKs: ${kekArn}`,
    );
    // The EMF line is out before the init fails, for the KekConfigured alarm.
    expect(started.stdout).toMatch(/"KekConfigured":0/);
    expect(started.stdout).not.toMatch(/"KekConfigured":1/);
    expect(output).not.toContain(auth.authorization.slice("Bearer ".length));
  }, 60_000);

  it("the audit function, which never uses the KEK, skips the check and keeps recording KMS events", async () => {
    const audit = await buildBundle("audit");
    // The audit function's own template environment: it watches the stage's keys, the KEK among them.
    const run = await invokeBundle(audit, stage.functionEnv("audit"), [
      sqsBatch(
        JSON.stringify(
          kmsCallEvent({
            eventName: "Decrypt",
            keyArn: kekArn,
            caller: { user: "mallory" },
            tenant: "acme",
          }),
        ),
      ),
    ]);
    expect(run.results[0]).toEqual({ batchItemFailures: [] });
    expect(run.logs).not.toContain("refusing to start");
    expect(run.logs).not.toMatch(/"KekConfigured"/);
    expect(run.logs).toMatch(/"KmsAnomalies":1/);
  }, 60_000);

  it("with the old key as previous it starts, and records KekConfigured 1", async () => {
    const started = await coldStart(api, after);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toMatch(/"KekConfigured":1/);
  }, 60_000);
});

describe("the KEK re-wrap handed from the bundled API to the bundled rotation function", () => {
  let requested: { results: any[] };
  let worked: { results: any[]; logs: string };
  let finished: { results: any[] };

  beforeAll(async () => {
    stage.kms.resetCalls();
    requested = await invokeBundle(api, after, [
      httpApiEvent("POST", "/v1/kek/rewrap", { headers: auth }),
      getKek(),
    ]);
    const request = stage.events.received.find((entry) => entry.DetailType === "KEK Rewrap Requested");
    if (request === undefined) {
      throw new Error(`the API sent no re-wrap request: ${JSON.stringify(requested.results[0]?.body)}`);
    }
    const foreign = { ...delivered(request), detail: { ...delivered(request).detail, stage: "prod" } };
    worked = await invokeBundle(
      rotation,
      { ...stage.functionEnv("rotation"), KMS_KEY_ID_PREVIOUS: previous.arn },
      [delivered(request), foreign],
    );
    finished = await invokeBundle(api, after, [
      getKek(),
      httpApiEvent("GET", "/v1/tenants/acme/secrets/stripe-key", {
        headers: { ...auth, "x-audit-reason": "after the re-wrap" },
      }),
    ]);
  }, 120_000);

  it("POST /v1/kek/rewrap answers 202 with the started state and re-wraps nothing itself", () => {
    expect(requested.results[0].statusCode).toBe(202);
    expect(body(requested.results[0])).toMatchObject({
      started: true,
      state: { phase: "rewrap", pass: 1, targetKekId: kekArn },
    });
    expect(body(requested.results[1]).rewrap).toMatchObject({ phase: "rewrap", rewrapped: 0 });
  });

  it("sends one PutEvents entry to the stage's bus, carrying the stage and the request id only", () => {
    const requests = stage.events.received.filter((entry) => entry.DetailType === "KEK Rewrap Requested");
    expect(requests).toEqual([
      {
        EventBusName: BUS,
        Source: "strongbox.api",
        DetailType: "KEK Rewrap Requested",
        Detail: expect.any(String),
      },
    ]);
    expect(Object.keys(JSON.parse(requests[0]?.Detail ?? "{}")).sort()).toEqual(["requestId", "stage"]);
    expect(JSON.parse(requests[0]?.Detail ?? "{}").stage).toBe(STAGE);
  });

  it("the rotation function re-wraps on the delivered event, with one ReEncrypt per DEK, and skips another stage's", () => {
    expect(worked.results[0]).toMatchObject({ phase: "done", pass: 1, rewrapped: 2, stoppedBecause: "done" });
    expect(worked.results[1]).toEqual({ skipped: "not an EventBridge scheduled event" });
    expect(stage.kms.calls.ReEncrypt).toBe(2);
    const finishedEvent = stage.events.received.find((entry) => entry.DetailType === "KEK Rewrap Finished");
    expect(finishedEvent).toMatchObject({ EventBusName: BUS, Source: "strongbox.rotation" });
    expect(JSON.parse(finishedEvent?.Detail ?? "{}")).toMatchObject({ stage: STAGE, rewrapped: 2 });
  });

  it("GET /v1/kek then shows the re-wrap done and the old key free to go, and the secret still reads", () => {
    const report = body(finished.results[0]);
    expect(report.rewrap).toMatchObject({ phase: "done", deregistered: [previous.arn] });
    expect(report.keks.find((kek: { kekId: string }) => kek.kekId === previous.arn)).toMatchObject({
      dataKeys: 0,
      mayBeRemoved: true,
    });
    expect(body(finished.results[1]).value).toBe(canary);
    expect(worked.logs).not.toContain(canary);
    expect(stage.events.bodies.join("\n")).not.toContain(canary);
  });
});

describe("every AWS call above, held to the stage's policies", () => {
  it("was allowed, the rotation function's backfill Scan and the API's hand-off among them", () => {
    const denied = stage.proxy.calls
      .filter((call) => !call.allowed)
      .map((call) => `${call.principal} ${call.action}`);
    expect(denied).toEqual([]);
    const made = new Set(stage.proxy.calls.map((call) => `${call.principal} ${call.action}`));
    for (const call of ["rotation dynamodb:Scan", "api events:PutEvents", "rotation kms:ReEncryptTo"]) {
      expect(made).toContain(call);
    }
  });
});
