import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { kekFingerprint, LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { type EventBridgeEndpoint, startEventBridgeEndpoint } from "../../testing/eventbridge-endpoint.ts";
import {
  DUMMY_CREDENTIALS,
  type Harness,
  randomKek,
  startHarness,
  startStore,
} from "../../testing/harness.ts";
import { IAM_ACCOUNT, iamApiEvent } from "../../testing/http-api-event.ts";
import { lambdaCaller } from "../../testing/lambda-call.ts";
import { rewrapAndSettle } from "../../testing/rewrap.ts";

/*
 * A local KEK rotation carried through to its end (docs/rotation.md): every authority-bearing item
 * written under KEK A (a token, a binding, seal items, a wrapping token, a break-glass credential) and
 * every audit chain must still do what it did once A is gone from the configuration, because the
 * re-wrap re-keyed them. Three instances over one table: A alone, B with A as previous, B alone.
 */

const kekA = randomKek();
const kekB = randomKek();
const fpA = kekFingerprint(kekA);
const REASON = { "x-audit-reason": "authority re-key test" };
const roleArn = `arn:aws:iam::${IAM_ACCOUNT}:role/apps/rekeyed`;
const session = `arn:aws:sts::${IAM_ACCOUNT}:assumed-role/rekeyed/s-1`;

let store: { dynamo: LocalDynamo; table: Table };
let bus: EventBridgeEndpoint;
/** Issued under KEK A. */
const old = { admin: "", runner: "", operator: "", wrap: "", breakGlass: "" };

async function instance(active: Uint8Array, previous: Uint8Array[] = []): Promise<Harness> {
  return startHarness({
    store,
    keyring: new LocalKeyring({ active, previous }),
    env: {
      AUDIT_DENIAL_WINDOW_SECONDS: "0",
      ROTATION_LEASE_SECONDS: "0",
      EVENT_BUS_NAME: "strongbox-test-bus",
      STRONGBOX_ENVIRONMENT: "test",
      EVENTBRIDGE_ENDPOINT: bus.endpoint,
    },
  });
}

const readDb = (h: Harness, tenant: string, token: string) =>
  h.call("GET", `/v1/tenants/${tenant}/secrets/db`, { token, headers: REASON });

beforeAll(async () => {
  bus = await startEventBridgeEndpoint();
  vi.stubEnv("AWS_ACCESS_KEY_ID", DUMMY_CREDENTIALS.accessKeyId);
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", DUMMY_CREDENTIALS.secretAccessKey);
  store = await startStore();
  const a = await instance(kekA);
  old.admin = await a.token("admin");
  for (const tenantId of ["acme", "locked", "doomed"]) {
    expect((await a.call("POST", "/v1/tenants", { token: old.admin, body: { tenantId } })).status).toBe(201);
    const put = await a.call("PUT", `/v1/tenants/${tenantId}/secrets/db`, {
      token: old.admin,
      body: { value: `${tenantId}-value` },
    });
    expect(put.status).toBe(200);
  }
  const deleted = await a.call("DELETE", "/v1/tenants/doomed", {
    token: old.admin,
    body: { confirm: "doomed" },
  });
  expect(deleted.status).toBe(200);
  const runner = await a.call("POST", "/v1/tokens", {
    token: old.admin,
    body: { role: "runner", tenants: ["acme"], ttlSeconds: 3600 },
  });
  expect(runner.status).toBe(201);
  old.runner = (await runner.json()).token;
  const binding = await a.call("POST", "/v1/bindings", {
    token: old.admin,
    body: { principalArn: roleArn, role: "runner", tenants: ["acme"] },
  });
  expect(binding.status).toBe(201);
  for (const action of ["seal", "unseal"]) {
    const changed = await a.call("POST", `/v1/tenants/acme/${action}`, {
      token: old.admin,
      body: { reason: `authority re-key test ${action}` },
    });
    expect(changed.status).toBe(200);
  }
  const sealed = await a.call("POST", "/v1/tenants/locked/seal", {
    token: old.admin,
    body: { reason: "stays sealed across the rotation" },
  });
  expect(sealed.status).toBe(200);
  const wrapped = await a.call("GET", "/v1/tenants/acme/secrets/db?wrapTtlSeconds=3600", {
    token: old.admin,
    headers: REASON,
  });
  expect(wrapped.status).toBe(200);
  old.wrap = (await wrapped.json()).wrap.token;
  const operator = await a.runtime.tokens.issue("operator", ["acme"], 3600);
  old.operator = operator.token;
  const asked = await a.call("POST", "/v1/tenants/acme/break-glass", {
    token: old.operator,
    body: { reason: "INC-7 across a KEK rotation", durationMinutes: 60 },
  });
  expect(asked.status).toBe(201);
  const { id } = await asked.json();
  const approver = await a.token("admin");
  expect(
    (await a.call("POST", `/v1/tenants/acme/break-glass/${id}/approve`, { token: approver })).status,
  ).toBe(200);
  const activated = await a.call("POST", `/v1/tenants/acme/break-glass/${id}/activate`, {
    token: old.operator,
  });
  expect(activated.status).toBe(201);
  old.breakGlass = (await activated.json()).credential;

  const b = await instance(kekB, [kekA]);
  const report = await rewrapAndSettle(b, old.admin);
  expect(report.rewrap).toMatchObject({
    phase: "done",
    rekey: {
      step: "chains",
      // The first admin, the runner, the operator, the approver, the binding, two seal items, the
      // deletion certificate, the wrap and the break-glass request.
      itemsRekeyed: 10,
      itemIntegrityFailures: 0,
      // _system, acme, doomed and locked.
      chainsReanchored: 4,
      chainsBroken: [],
    },
  });
  expect(report.keks.find((k) => k.kekId === fpA)).toMatchObject({ mayBeRemoved: true });
}, 60_000);
afterAll(async () => {
  vi.unstubAllEnvs();
  await store?.dynamo.close();
  await bus?.close();
});

describe("after the re-wrap, with the old KEK removed", () => {
  let h: Harness;
  let admin: string;
  beforeAll(async () => {
    h = await instance(kekB);
    // Issued under KEK B, so each check below fails for its own reason only.
    admin = await h.token("admin");
  });

  it("tokens issued under the old KEK still authenticate", async () => {
    expect((await readDb(h, "acme", old.runner)).status).toBe(200);
    expect((await readDb(h, "acme", old.admin)).status).toBe(200);
  });

  it("a binding made under the old KEK still maps its principal", async () => {
    const read = await lambdaCaller(h.app)(
      iamApiEvent("GET", "/iam/v1/tenants/acme/secrets/db", session, { headers: REASON }),
    );
    expect(read.status).toBe(200);
  });

  it("a tenant unsealed under the old KEK is not sealed", async () => {
    const read = await readDb(h, "acme", admin);
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ value: "acme-value" });
  });

  it("a tenant sealed under the old KEK is still sealed", async () => {
    const read = await readDb(h, "locked", admin);
    expect(read.status).toBe(423);
    expect((await read.json()).error.code).toBe("tenant_sealed");
  });

  it("a wrapping token made under the old KEK still unwraps", async () => {
    const unwrapped = await h.call("POST", "/v1/unwrap", { body: { token: old.wrap } });
    expect(unwrapped.status).toBe(200);
    expect(await unwrapped.json()).toMatchObject({ kind: "secret.read", data: { value: "acme-value" } });
  });

  it("a break-glass credential activated under the old KEK still works", async () => {
    expect((await h.call("GET", "/v1/tenants/acme/audit", { token: old.breakGlass })).status).toBe(200);
  });

  it("a deletion certificate made under the old KEK still verifies", async () => {
    const check = await h.call("GET", "/v1/tenants/doomed/deletion-certificate", { token: admin });
    expect(check.status).toBe(200);
    expect(await check.json()).toMatchObject({ verified: true, certificate: { tenantId: "doomed" } });
  });

  it("every audit chain verifies intact", async () => {
    for (const scope of ["acme", "locked", "doomed"]) {
      const verified = await h.call("GET", `/v1/tenants/${scope}/audit/verify`, { token: admin });
      expect(verified.status).toBe(200);
      expect(await verified.json()).toMatchObject({ scope, intact: true });
    }
    const system = await h.call("GET", "/v1/audit/verify", { token: admin });
    expect(system.status).toBe(200);
    expect(await system.json()).toMatchObject({ intact: true });
  });

  it("a walk resumed from its cursors one record at a time carries what awaits the re-anchor, and ends intact", async () => {
    const verifier = h.runtime.chainVerifier;
    let result = await verifier.verify("acme", undefined, { budgetMs: 0 });
    const calls = [result];
    while (result.nextCursor !== undefined) {
      result = await verifier.verify("acme", undefined, { budgetMs: 0, cursor: result.nextCursor });
      calls.push(result);
    }
    expect(calls.length).toBeGreaterThan(5);
    // Until the walk meets the re-anchor, nothing keyed by the old KEK counts as verified.
    expect(calls[0]).toMatchObject({ intact: true, verifiedThrough: 0, records: 1 });
    expect(result).toMatchObject({ intact: true, verifiedThrough: result.records });
  });
});
