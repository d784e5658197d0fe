import { randomBytes } from "node:crypto";
import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { Context, ScheduledEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import type { RunSummary } from "../../shared/domain/rotation.ts";
import { type EventBridgeEndpoint, startEventBridgeEndpoint } from "../../testing/eventbridge-endpoint.ts";
import { headKey, tenantKey } from "../../testing/faults.ts";
import { DUMMY_CREDENTIALS, type Harness, startHarness, startStore } from "../../testing/harness.ts";
import { TEST_RETIRE_GRACE_MS } from "../../testing/rotation-fixtures.ts";

type Handler = (
  event: ScheduledEvent,
  context: Context,
) => Promise<RunSummary | { skipped: string } | object>;

const KEK = randomBytes(32);
const CANARY = "CANARY-rotation-handler-7f3a";
let store: Awaited<ReturnType<typeof startStore>>;
let bus: EventBridgeEndpoint;
let seeder: Harness;
let admin: string;
let handler: Handler;

/** An EventBridge scheduled event, as a schedule rule delivers it to its target. */
function scheduledEvent(id: string): ScheduledEvent {
  return {
    version: "0",
    id,
    "detail-type": "Scheduled Event",
    source: "aws.events",
    account: "111122223333",
    time: "2026-11-23T00:00:00Z",
    region: "us-east-1",
    resources: ["arn:aws:events:us-east-1:111122223333:rule/strongbox-dev-rotation"],
    detail: {},
  };
}

/** A Lambda context whose remaining time is whatever the test says, call by call. */
function contextWith(remainingMs: () => number): Context {
  // Lambda gives every invocation its own request id; the handler uses it as its lease owner.
  return {
    getRemainingTimeInMillis: remainingMs,
    awsRequestId: `req-${randomBytes(4).toString("hex")}`,
  } as unknown as Context;
}

beforeAll(async () => {
  store = await startStore();
  bus = await startEventBridgeEndpoint();
  seeder = await startHarness({
    store,
    keyring: new LocalKeyring({ active: new Uint8Array(KEK), previous: [] }),
    rotation: { retireGraceMs: TEST_RETIRE_GRACE_MS },
  });
  admin = await seeder.token("admin");
  const call = (method: string, path: string, body?: unknown) =>
    seeder.call(method, path, { token: admin, ...(body === undefined ? {} : { body }) });
  expect((await call("POST", "/v1/tenants", { tenantId: "sched" })).status).toBe(201);
  for (let i = 0; i < 30; i += 1) {
    expect(
      (await call("PUT", `/v1/tenants/sched/secrets/bulk-${i}`, { value: `${CANARY}-${i}` })).status,
    ).toBe(200);
  }
  expect((await call("PUT", "/v1/tenants/sched/secrets/provider", { value: CANARY })).status).toBe(200);
  expect(
    (await call("PUT", "/v1/tenants/sched/secrets/provider/rotation", { rotationPeriodDays: 30 })).status,
  ).toBe(200);
  expect((await call("PUT", "/v1/tenants/sched/secrets/generated", { value: CANARY })).status).toBe(200);
  const generator = { generator: { kind: "token", length: 32 }, rotationPeriodDays: 30 };
  expect((await call("PUT", "/v1/tenants/sched/secrets/generated/rotation", generator)).status).toBe(200);
  for (const name of ["provider", "generated"]) {
    await store.table.doc.send(
      new UpdateCommand({
        TableName: store.table.name,
        Key: headKey("sched", name),
        UpdateExpression: "SET rotation.dueAt = :due",
        ExpressionAttributeValues: { ":due": new Date(Date.now() - 3600_000).toISOString() },
      }),
    );
  }
  expect((await call("POST", "/v1/tenants/sched/rotate-dek")).status).toBe(200);

  Object.assign(process.env, {
    TABLE_NAME: store.table.name,
    DYNAMODB_ENDPOINT: store.dynamo.endpoint,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
    CREDENTIALS_KEK: KEK.toString("base64"),
    EVENT_BUS_NAME: "strongbox-test-bus",
    STRONGBOX_ENVIRONMENT: "test",
    EVENTBRIDGE_ENDPOINT: bus.endpoint,
    ROTATION_PAGE_SIZE: "5",
  });
  ({ handler } = (await import("../../functions/rotation/handler.ts")) as unknown as { handler: Handler });
});
afterAll(async () => {
  await bus?.close();
  await store?.dynamo.close();
});

/**
 * The Lambda reads its settings from the environment, which cannot shorten the DEK retirement grace
 * period below ten seconds. Instead of waiting it out, the test moves the tenant's DEK rotation time and
 * the sweep's last pass end an hour back, as if the grace period had passed.
 */
async function elapseGrace() {
  const past = new Date(Date.now() - 3600_000).toISOString();
  await store.table.doc.send(
    new UpdateCommand({
      TableName: store.table.name,
      Key: tenantKey("sched"),
      UpdateExpression: "SET dekRotatedAt = :past",
      ExpressionAttributeValues: { ":past": past },
    }),
  );
  await store.table.doc.send(
    new UpdateCommand({
      TableName: store.table.name,
      Key: { pk: "T#sched", sk: "SWEEP" },
      UpdateExpression: "SET #state.lastPassEndedAt = :past",
      ExpressionAttributeNames: { "#state": "state" },
      ExpressionAttributeValues: { ":past": past },
    }),
  );
}

describe("the rotation Lambda on EventBridge scheduled events", () => {
  it("stops when the invocation's time runs out, and the next invocation continues from the checkpoint", async () => {
    let calls = 0;
    // Plenty of time for the first few checks, then the invocation is nearly out of time.
    const first = (await handler(
      scheduledEvent("run-1"),
      contextWith(() => (++calls < 4 ? 60_000 : 5_000)),
    )) as RunSummary;
    expect(first.outOfTime).toBe(true);
    expect(first.sweeps).toEqual([
      expect.objectContaining({ tenantId: "sched", stoppedBecause: "deadline" }),
    ]);
    const status = await (await seeder.call("GET", "/v1/tenants/sched/rotation", { token: admin })).json();
    expect(status.sweep.phase).toBe("reencrypt");
    expect(status.sweep.cursor).toBeDefined();
    expect(status.itemsByDekVersion["2"]).toBeGreaterThan(0);
    expect(status.itemsByDekVersion["1"]).toBeGreaterThan(0);

    await elapseGrace();
    const second = (await handler(
      scheduledEvent("run-2"),
      contextWith(() => 60_000),
    )) as RunSummary;
    expect(second.outOfTime).toBe(false);
    // Re-sealed and settled; the verify pass waits half a grace period after the settle pass.
    expect(second.sweeps).toEqual([expect.objectContaining({ tenantId: "sched", stoppedBecause: "grace" })]);
    expect(second.due).toEqual({ found: 2, rotated: 1, notified: 1, failed: 0, scanComplete: true });
    await elapseGrace();
    const third = (await handler(
      scheduledEvent("run-3"),
      contextWith(() => 60_000),
    )) as RunSummary;
    expect(third.sweeps).toEqual([expect.objectContaining({ tenantId: "sched", stoppedBecause: "done" })]);
    const after = await (await seeder.call("GET", "/v1/tenants/sched/rotation", { token: admin })).json();
    expect(Object.keys(after.itemsByDekVersion)).toEqual(["2"]);
    expect(after.retiredDataKeys).toEqual([expect.objectContaining({ version: 1 })]);
  });

  it("publishes its events to the bus with PutEvents, carrying no secret value", () => {
    const types = bus.received.map((event) => event.DetailType).sort();
    expect(types).toEqual(["DEK Sweep Finished", "Secret Rotated", "Secret Rotation Due"]);
    for (const event of bus.received) {
      expect(event).toMatchObject({ EventBusName: "strongbox-test-bus", Source: "strongbox.rotation" });
      expect(JSON.parse(event.Detail ?? "{}")).toMatchObject({ tenantId: "sched", stage: "test" });
    }
    for (const body of bus.bodies) expect(body).not.toContain(CANARY);
  });

  it("a later run finds the BYOK secret still due but announces it only once, and publishes nothing", async () => {
    const before = bus.received.length;
    const run = (await handler(
      scheduledEvent("run-3"),
      contextWith(() => 60_000),
    )) as RunSummary;
    expect(run).toMatchObject({
      sweeps: [],
      due: { found: 1, rotated: 0, notified: 1, failed: 0 },
      events: 0,
      outOfTime: false,
    });
    expect(bus.received).toHaveLength(before);
  });

  it("ignores an event that is not an EventBridge schedule", async () => {
    const forged = { ...scheduledEvent("forged"), source: "custom.app" } as ScheduledEvent;
    expect(
      await handler(
        forged,
        contextWith(() => 60_000),
      ),
    ).toEqual({ skipped: "not an EventBridge scheduled event" });
  });

  it("ignores a re-wrap request from another stage, or one forged under another source", async () => {
    const request = (source: string, stage: string) =>
      ({
        ...scheduledEvent("rewrap"),
        source,
        "detail-type": "KEK Rewrap Requested",
        detail: { stage, requestId: "req-1" },
      }) as unknown as ScheduledEvent;
    for (const event of [request("strongbox.api", "prod"), request("custom.app", "test")]) {
      expect(
        await handler(
          event,
          contextWith(() => 60_000),
        ),
      ).toEqual({
        skipped: "not an EventBridge scheduled event",
      });
    }
    // From its own stage it is taken; with no re-wrap started there is nothing to do.
    expect(
      await handler(
        request("strongbox.api", "test"),
        contextWith(() => 60_000),
      ),
    ).toEqual({
      skipped: "no unfinished KEK re-wrap",
    });
  });
});
