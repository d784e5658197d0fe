import { randomBytes } from "node:crypto";
import { Logger } from "@aws-lambda-powertools/logger";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { TenantRepository } from "../../shared/storage/tenant-repository.ts";
import { type Harness, randomKek, startHarness, startStore } from "../../testing/harness.ts";
import { captureProcessOutput, type OutputCapture } from "../../testing/output-capture.ts";
import { backgroundRewrapSettled } from "../../testing/rewrap.ts";
import { runUntilSwept, TEST_RETIRE_GRACE_MS } from "../../testing/rotation-fixtures.ts";

/*
 * Canaries through every rotation path: DEK rotation and its sweep, the KEK re-wrap, generated and
 * bring-your-own-key value rotation, idempotency conflicts, and the runner's events, which go to the
 * log when no bus is configured. None of the values, generated values, KEKs or DEKs may show up in a
 * log line, an error response, or an audit record.
 */

const VALUE = `rot-canary-${randomBytes(16).toString("hex")}`;
const PENDING = `rot-canary-pending-${randomBytes(16).toString("hex")}`;
const CONFLICTING = `rot-canary-conflict-${randomBytes(16).toString("hex")}`;
const kekA = randomKek();
const kekB = randomKek();

const errorBodies: string[] = [];
let auditText = "";
const generated: string[] = [];
const deks: Uint8Array[] = [];
let output: OutputCapture | undefined;

const encodings = (bytes: Uint8Array) => [
  Buffer.from(bytes).toString("hex"),
  Buffer.from(bytes).toString("base64"),
];

beforeAll(async () => {
  output = captureProcessOutput();
  const logger = new Logger({ serviceName: "strongbox-rotation-canary", logLevel: "DEBUG" });
  const store = await startStore();
  const rotation = { retireGraceMs: TEST_RETIRE_GRACE_MS };
  const old = await startHarness({
    store,
    rotation,
    logger,
    keyring: new LocalKeyring({ active: kekA, previous: [] }),
  });
  const h: Harness = await startHarness({
    store,
    rotation,
    logger,
    keyring: new LocalKeyring({ active: kekB, previous: [kekA] }),
  });
  const admin = await old.token("admin");
  const call = async (method: string, path: string, body?: unknown, headers?: Record<string, string>) => {
    const response = await h.call(method, path, {
      token: admin,
      ...(body === undefined ? {} : { body }),
      ...(headers === undefined ? {} : { headers }),
    });
    if (response.status >= 400) errorBodies.push(response.text);
    return response;
  };
  const secret = "/v1/tenants/canary/secrets";
  const reason = { "x-audit-reason": "rotation canary" };

  expect((await old.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "canary" } })).status).toBe(
    201,
  );
  expect((await old.call("PUT", `${secret}/byok`, { token: admin, body: { value: VALUE } })).status).toBe(
    200,
  );
  expect(
    (
      await call("PUT", `${secret}/byok`, {
        value: PENDING,
        stage: "pending",
        clientRequestToken: "canary-0001",
      })
    ).status,
  ).toBe(200);
  expect(
    (await call("PUT", `${secret}/byok`, { value: CONFLICTING, clientRequestToken: "canary-0001" })).status,
  ).toBe(409);
  expect((await call("POST", `${secret}/byok/promote`, {})).status).toBe(200);
  expect((await call("PUT", `${secret}/generated`, { value: VALUE })).status).toBe(200);
  expect(
    (await call("PUT", `${secret}/generated/rotation`, { generator: { kind: "password", length: 40 } }))
      .status,
  ).toBe(200);
  expect(
    (await call("POST", `${secret}/generated/rotate`, { clientRequestToken: "canary-rot-1" })).status,
  ).toBe(200);
  expect((await call("POST", `${secret}/generated/rotate`, {})).status).toBe(200);
  expect((await call("POST", `${secret}/byok/rotate`, {})).status).toBe(200);
  expect((await call("POST", "/v1/tenants/canary/rotate-dek")).status).toBe(200);
  expect((await call("POST", "/v1/kek/rewrap")).status).toBe(202);
  await backgroundRewrapSettled(h);
  const run = await runUntilSwept(h, "canary", "canary-run");
  expect(run.sweeps).toEqual([expect.objectContaining({ tenantId: "canary", stoppedBecause: "done" })]);
  for (const version of [1, 2, 3]) {
    const got = await call("GET", `${secret}/generated?version=${version}`, undefined, reason);
    generated.push((await got.json()).value);
  }
  expect((await call("POST", `${secret}/generated/rollback`, { version: 2 })).status).toBe(200);
  expect((await call("POST", "/v1/rotation/run")).status).toBe(200);
  auditText =
    (await call("GET", "/v1/tenants/canary/audit?limit=999")).text +
    (await call("GET", "/v1/audit?limit=999")).text;

  const tenant = await new TenantRepository(store.table).get("canary");
  for (const key of tenant?.dataKeys ?? []) {
    deks.push(await h.runtime.keyring.unwrap(key, { tenantId: "canary", dekVersion: key.version }));
  }
  await store.dynamo.close();
});
afterAll(() => {
  output?.restore();
});

describe("rotation leaks nothing", () => {
  it("the canaries really went through: values were generated and a DEK was unwrapped", () => {
    expect(generated.slice(1).every((value) => value.length === 40)).toBe(true);
    expect(deks.length).toBe(1);
    expect((output?.writes ?? []).join("")).toContain("rotation event");
  });

  it("no value, generated value, KEK or DEK appears in the logs, error responses or audit records", () => {
    const needles = [
      VALUE,
      PENDING,
      CONFLICTING,
      ...generated,
      ...encodings(kekA),
      ...encodings(kekB),
      ...deks.flatMap(encodings),
    ];
    for (const [where, text] of [
      ["logs", (output?.writes ?? []).join("")],
      ["error responses", errorBodies.join("\n")],
      ["audit records", auditText],
    ] as const) {
      expect(text.length, where).toBeGreaterThan(0);
      for (const needle of needles) expect(text.includes(needle), `${where} hold a canary`).toBe(false);
    }
  });
});
