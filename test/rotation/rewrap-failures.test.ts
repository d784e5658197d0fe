import { KMSClient } from "@aws-sdk/client-kms";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KmsChainKeys } from "../../shared/crypto/chain-keys.ts";
import { KmsKeyring } from "../../shared/crypto/kms-keyring.ts";
import type { RotationEvent } from "../../shared/domain/rotation.ts";
import { deadlineIn } from "../../shared/domain/work.ts";
import { EventBridgeRewrapDispatch } from "../../shared/observability/rewrap-requests.ts";
import { createEventBridgeClient, type RotationEvents } from "../../shared/observability/rotation-events.ts";
import { TenantRepository } from "../../shared/storage/tenant-repository.ts";
import { type EventBridgeEndpoint, startEventBridgeEndpoint } from "../../testing/eventbridge-endpoint.ts";
import { DUMMY_CREDENTIALS, startHarness, startStore } from "../../testing/harness.ts";
import { initialKeyId, type KmsEndpoint, startKmsEndpoint } from "../../testing/kms-endpoint.ts";
import { rewrapAndSettle, rewrapSettled } from "../../testing/rewrap.ts";

// The re-wrap as the rotation function's role meets it on AWS: KMS refuses ReEncrypt (the API role's
// lot, or a key policy gone wrong). KMS is the loopback KMS-protocol endpoint with the real client, and
// its refusals are AccessDeniedException, as KMS answers a call IAM denies.

type Store = Awaited<ReturnType<typeof startStore>>;

let kms: KmsEndpoint;
let macKeyArn: string;
const stores: Store[] = [];
afterAll(async () => {
  for (const store of stores) await store.dynamo.close();
  await kms?.close();
});

const client = () =>
  new KMSClient({
    endpoint: kms.endpoint,
    region: "us-east-1",
    credentials: DUMMY_CREDENTIALS,
    maxAttempts: 1,
  });
const keyring = (keyId: string, previous: string[] = []) =>
  new KmsKeyring({ client: client(), keyId, previousKeyIds: previous });
const chainKeys = () => new KmsChainKeys({ client: client(), keyId: macKeyArn });

/** Rotation events as the runs hand them over, instead of the log. */
function collectingEvents(): RotationEvents & { readonly seen: RotationEvent[] } {
  const seen: RotationEvent[] = [];
  return { seen, publish: async (events) => void seen.push(...events) };
}

/** Three tenants with one DEK each under key 1, and an instance configured with key 2 (key 1 previous). */
async function rotatedTable(options: Parameters<typeof startHarness>[0] = {}) {
  const store = await startStore();
  stores.push(store);
  const seeder = await startHarness({ store, keyring: keyring(initialKeyId(1)), chainKeys: chainKeys() });
  const seederAdmin = await seeder.token("admin");
  for (const tenantId of ["one", "two", "three"]) {
    expect(
      (await seeder.call("POST", "/v1/tenants", { token: seederAdmin, body: { tenantId } })).status,
    ).toBe(201);
  }
  const events = collectingEvents();
  const h = await startHarness({
    store,
    keyring: keyring(initialKeyId(2), [initialKeyId(1)]),
    chainKeys: chainKeys(),
    events,
    ...options,
  });
  const admin = await h.token("admin");
  // Resolves the configured keys and today's audit MAC key, so the counts below are the re-wrap's own.
  expect((await h.call("GET", "/v1/kek", { token: admin })).status).toBe(200);
  kms.resetCalls();
  return { store, h, admin, events };
}

beforeEach(async () => {
  kms ??= await startKmsEndpoint({ keys: 2 });
  macKeyArn ??= kms.createHmacKey();
});

describe("a re-wrap pass in which DEKs fail", () => {
  it("is never done: it stays unfinished with its failures per KEK, counts each in RotationFailures, and stops", async () => {
    const { store, h, admin, events } = await rotatedTable();
    const oldArn = kms.keyArn(initialKeyId(1));
    kms.failNext("ReEncrypt", "AccessDeniedException", 6);

    const report = await rewrapAndSettle(h, admin);
    expect(report.rewrap).toMatchObject({
      phase: "rewrap",
      pass: 2,
      failedByKek: {},
      lastFailedPass: { pass: 1, failedByKek: { [oldArn]: 3 } },
      lastFailureAt: expect.any(String),
    });
    expect(report.rewrap?.finishedAt).toBeUndefined();
    // One pass, then it stopped: no second round of calls straight after the first failed.
    expect(kms.calls).toEqual({ ReEncrypt: 3 });
    expect(h.runtime.metrics.count("RotationFailures")).toBe(3);
    expect(await new TenantRepository(store.table).registeredKeks()).toContain(oldArn);
    expect(events.seen).toContainEqual({
      detailType: "Rotation Failed",
      detail: { work: "kek-rewrap", code: "rewrap_pass_failed", pass: 1, failed: 3 },
    });

    // The scheduled run retries it, one pass per run.
    const retried = await h.runtime.scheduledWork.run(deadlineIn(10_000), "retry-1");
    expect(retried.rewrap).toEqual({
      phase: "rewrap",
      pass: 3,
      rewrapped: 0,
      stoppedBecause: "failed",
      failedByKek: { [oldArn]: 3 },
    });
    expect(kms.calls).toEqual({ ReEncrypt: 6 });
    expect(h.runtime.metrics.count("RotationFailures")).toBe(6);

    // KMS lets the calls through again: the next run finishes and only then forgets the old key.
    const finished = await h.runtime.scheduledWork.run(deadlineIn(10_000), "retry-2");
    expect(finished.rewrap).toMatchObject({ phase: "done", pass: 3, rewrapped: 3, stoppedBecause: "done" });
    const done = (await rewrapSettled(h, admin)).rewrap;
    expect(done).toMatchObject({
      phase: "done",
      pass: 3,
      rewrapped: 3,
      failedByKek: {},
      deregistered: [oldArn],
      lastFailedPass: { pass: 2, failedByKek: { [oldArn]: 3 } },
    });
    expect(h.runtime.metrics.count("RotationFailures")).toBe(6);
    expect(h.runtime.metrics.count("RotationsCompleted")).toBe(1);
    expect(events.seen.map((event) => event.detailType)).toContain("KEK Rewrap Finished");
  });

  it("is made again from the first tenant, and DEKs already on the target KEK cost no KMS call", async () => {
    const { h, admin } = await rotatedTable();
    kms.failNext("ReEncrypt", "AccessDeniedException", 1);
    const first = (await rewrapAndSettle(h, admin)).rewrap;
    expect(first).toMatchObject({ phase: "rewrap", pass: 2, rewrapped: 2 });
    expect(Object.values(first?.lastFailedPass?.failedByKek ?? {})).toEqual([1]);
    expect(kms.calls).toEqual({ ReEncrypt: 3 });

    const second = await h.runtime.scheduledWork.run(deadlineIn(10_000), "second-pass");
    expect(second.rewrap).toMatchObject({ phase: "done", rewrapped: 1, stoppedBecause: "done" });
    expect(kms.calls).toEqual({ ReEncrypt: 4 });
  });
});

describe("the API hands the re-wrap on and never re-wraps itself", () => {
  let bus: EventBridgeEndpoint;
  afterAll(() => bus?.close());
  // The EventBridge client takes its credentials from the environment, as on Lambda.
  beforeEach(() => {
    vi.stubEnv("AWS_ACCESS_KEY_ID", DUMMY_CREDENTIALS.accessKeyId);
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", DUMMY_CREDENTIALS.secretAccessKey);
  });
  afterEach(() => vi.unstubAllEnvs());

  it("POST /v1/kek/rewrap and POST /v1/rotation/run send a request to the rotation function, with no ReEncrypt", async () => {
    bus = await startEventBridgeEndpoint();
    const dispatch = new EventBridgeRewrapDispatch(
      createEventBridgeClient({ region: "us-east-1", endpoint: bus.endpoint }),
      "strongbox-test",
      "test",
    );
    const { store, h: api, admin } = await rotatedTable({ rewrapDispatch: dispatch });

    const accepted = await api.call("POST", "/v1/kek/rewrap", { token: admin });
    expect(accepted.status).toBe(202);
    expect(await accepted.json()).toMatchObject({
      started: true,
      state: { phase: "rewrap", pass: 1, targetKekId: kms.keyArn(initialKeyId(2)), rewrapped: 0 },
    });
    const run = await api.call("POST", "/v1/rotation/run", { token: admin });
    expect(run.status).toBe(200);
    expect((await run.json()).rewrap).toEqual({
      phase: "rewrap",
      pass: 1,
      rewrapped: 0,
      stoppedBecause: "handed-off",
    });
    // Continuing an unfinished re-wrap under the same KEK starts nothing new.
    const again = await api.call("POST", "/v1/kek/rewrap", { token: admin });
    expect(await again.json()).toMatchObject({ started: false, state: { pass: 1 } });
    expect(kms.calls.ReEncrypt).toBeUndefined();

    expect(bus.received).toHaveLength(3);
    for (const entry of bus.received) {
      expect(entry).toMatchObject({
        EventBusName: "strongbox-test",
        Source: "strongbox.api",
        DetailType: "KEK Rewrap Requested",
      });
      expect(JSON.parse(entry.Detail ?? "")).toEqual({ stage: "test", requestId: expect.any(String) });
    }

    // The audit trail records the request as accepted, not a finished re-wrap.
    const trail = await (await api.call("GET", "/v1/audit?action=kek.rewrap", { token: admin })).json();
    const success = trail.events.find((record: { outcome: string }) => record.outcome === "success");
    expect(success.detail).toContain("handed to the rotation work");

    // What the rotation function then does with the request.
    const rotation = await startHarness({
      store,
      keyring: keyring(initialKeyId(2), [initialKeyId(1)]),
      chainKeys: chainKeys(),
      directoryBackfill: true,
    });
    const worked = await rotation.runtime.scheduledWork.runRequestedRewrap(deadlineIn(10_000), "rotation-fn");
    expect(worked).toMatchObject({ phase: "done", rewrapped: 3, stoppedBecause: "done" });
    expect(kms.calls.ReEncrypt).toBe(3);
  });

  it("a request EventBridge cannot take is refused with 503 dispatch_unavailable, and the re-wrap stays recorded", async () => {
    const unreachable = new EventBridgeRewrapDispatch(
      createEventBridgeClient({ region: "us-east-1", endpoint: "http://127.0.0.1:9" }),
      "strongbox-test",
      "test",
    );
    const { h: api, admin } = await rotatedTable({ rewrapDispatch: unreachable });
    const refused = await api.call("POST", "/v1/kek/rewrap", { token: admin });
    expect(refused.status).toBe(503);
    const { error } = await refused.json();
    expect(error.code).toBe("dispatch_unavailable");
    // Refused by the network, not for want of credentials.
    expect(error.message).toMatch(/^EventBridge PutEvents failed \((?!CredentialsProviderError)/);
    expect(error.message).toContain("next scheduled run continues it");
    expect((await (await api.call("GET", "/v1/kek", { token: admin })).json()).rewrap).toMatchObject({
      phase: "rewrap",
    });
  });
});
