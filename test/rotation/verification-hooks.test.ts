import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SecretRepository } from "../../shared/storage/secret-repository.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";
import { type HttpsVerifier, startHttpsVerifier } from "../../testing/https-verifier.ts";

/*
 * Verification hooks (seed 002 SOP 5.1 step 5, §6.2 step 3): promotion, by hand or on schedule, goes
 * ahead only when the policy's verifier (here a local HTTPS server with a self-signed certificate the
 * service is told to trust) answers success. The hook learns where the value is, never the value.
 */

const TENANT = "acme";
const PENDING_VALUE = "PENDING-BYOK-VALUE-3b9d";
let h: Harness;
let verifier: HttpsVerifier;
let admin: string;

const path = (name: string) => `/v1/tenants/${TENANT}/secrets/${name}`;
const policy = (name: string, body: unknown) =>
  h.call("PUT", `${path(name)}/rotation`, { token: admin, body });
const headOf = (name: string) =>
  h.runtime.versionLifecycle.versions(
    { requestId: "test", principal: { actor: "test", role: "admin", tenants: ["*"] } },
    TENANT,
    name,
    50,
  );

beforeAll(async () => {
  verifier = await startHttpsVerifier();
  h = await startHarness({ env: { VERIFIER_CA_FILE: verifier.caFile }, rotation: { leaseMs: 0 } });
  admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } })).status).toBe(
    201,
  );
});
afterAll(async () => {
  await h?.close();
  await verifier?.close();
});

describe("promote with a verifier", () => {
  it("is called with {tenant, name, pendingVersion} and never the value; a failure leaves pending, counted and audited", async () => {
    await h.call("PUT", path("byok"), { token: admin, body: { value: "v1" } });
    expect((await policy("byok", { verifier: { url: verifier.url } })).status).toBe(200);
    await h.call("PUT", path("byok"), { token: admin, body: { value: PENDING_VALUE, stage: "pending" } });
    verifier.answer(200, '{"ok":false}');
    const failuresBefore = h.runtime.metrics.count("RotationFailures");
    const refused = await h.call("POST", `${path("byok")}/promote`, { token: admin, body: {} });
    expect(refused.status).toBe(409);
    expect((await refused.json()).error.code).toBe("verification_failed");
    expect(verifier.received.at(-1)).toBe(
      JSON.stringify({ tenant: TENANT, name: "byok", pendingVersion: 2 }),
    );
    for (const body of verifier.received) expect(body).not.toContain(PENDING_VALUE);
    expect(h.runtime.metrics.count("RotationFailures")).toBe(failuresBefore + 1);
    const labels = (await headOf("byok")).versions.map((v) => [v.version, v.labels]);
    expect(labels).toEqual([
      [1, ["current"]],
      [2, ["pending"]],
    ]);
    const events = (
      await (
        await h.call("GET", `/v1/tenants/${TENANT}/audit?secret=byok&action=secret.promote`, { token: admin })
      ).json()
    ).events as { outcome: string; detail?: string }[];
    expect(events.map((e) => e.outcome).sort()).toEqual(["attempt", "failure"]);
  });

  it("goes ahead once the verifier answers ok", async () => {
    verifier.answer(200, '{"ok":true}');
    const promoted = await h.call("POST", `${path("byok")}/promote`, { token: admin, body: {} });
    expect(promoted.status).toBe(200);
    expect(await promoted.json()).toMatchObject({ current: 2, previous: 1 });
  });

  it('treats a non-2xx answer, or a body that is not {"ok":true}, as a failure', async () => {
    await h.call("PUT", path("byok"), { token: admin, body: { value: "v3", stage: "pending" } });
    for (const [status, body] of [
      [500, '{"ok":true}'],
      [200, "ok"],
      [204, ""],
    ] as const) {
      verifier.answer(status, body);
      expect((await h.call("POST", `${path("byok")}/promote`, { token: admin, body: {} })).status).toBe(409);
    }
    verifier.answer(200, '{"ok":true}');
  });

  it("shows the verifier in the policy and can clear it", async () => {
    const set = await policy("byok", { verifier: null });
    expect(set.status).toBe(200);
    expect((await set.json()).verifier).toBeUndefined();
    expect((await h.call("POST", `${path("byok")}/promote`, { token: admin, body: {} })).status).toBe(200);
  });

  it("refuses a verifier that is not https or not a Lambda function ARN", async () => {
    for (const spec of [
      { url: "http://127.0.0.1/verify" },
      { lambdaArn: "arn:aws:s3:::bucket" },
      { url: 5 },
    ]) {
      expect((await policy("byok", { verifier: spec })).status).toBe(400);
    }
  });
});

describe("scheduled rotation with a verifier", () => {
  it("rotates only after the verifier passes; a failure leaves the generated version pending and is counted", async () => {
    await h.call("PUT", path("generated"), { token: admin, body: { value: "g1" } });
    const set = await policy("generated", {
      rotationPeriodDays: 1,
      generator: { kind: "token", length: 32 },
      verifier: { url: verifier.url },
    });
    expect(set.status).toBe(200);
    // Due now, as if a day had passed.
    const repository = new SecretRepository(h.table);
    const head = await repository.getHead(TENANT, "generated");
    if (head === undefined) throw new Error("no head");
    const rotation = { ...head.rotation, dueAt: new Date(Date.now() - 1000).toISOString() };
    expect(await repository.replaceHead({ ...head, rotation }, head)).toBe(true);
    verifier.answer(200, '{"ok":false}');
    const failed = await (await h.call("POST", "/v1/rotation/run", { token: admin })).json();
    expect(failed.due).toMatchObject({ failed: 1, rotated: 0 });
    expect((await headOf("generated")).versions.find((v) => v.version === 2)?.labels).toEqual(["pending"]);
    verifier.answer(200, '{"ok":true}');
    const passed = await (await h.call("POST", "/v1/rotation/run", { token: admin })).json();
    expect(passed.due).toMatchObject({ rotated: 1 });
    expect((await headOf("generated")).versions.find((v) => v.version === 2)?.labels).toEqual(["current"]);
  });
});

describe("an HTTPS verifier the service does not trust", () => {
  it("fails closed: its certificate is refused, so promotion does not happen", async () => {
    const untrusting = await startHarness({
      store: { dynamo: h.dynamo, table: h.table },
      keyring: h.runtime.keyring,
    });
    await h.call("PUT", path("strict"), { token: admin, body: { value: "s1" } });
    await policy("strict", { verifier: { url: verifier.url } });
    await h.call("PUT", path("strict"), { token: admin, body: { value: "s2", stage: "pending" } });
    const received = verifier.received.length;
    const refused = await untrusting.call("POST", `${path("strict")}/promote`, { token: admin, body: {} });
    expect(refused.status).toBe(409);
    expect((await refused.json()).error.message).toMatch(/unreachable/);
    expect(verifier.received.length).toBe(received);
  });
});
