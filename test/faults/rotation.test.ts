import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { type FaultRule, secretItemWrite } from "../../testing/fault-proxy.ts";
import {
  expectChainIntact,
  expectHistoryIntact,
  expectSuccessOrUnavailable,
  FAULTS,
  type FaultStack,
  SDK_ENV,
  startFaultStack,
  WriteLedger,
} from "../../testing/fault-stack.ts";
import { runUntilSwept, TEST_RETIRE_GRACE_MS } from "../../testing/rotation-fixtures.ts";

// DEK rotation (the new DEK from KMS, then the re-encryption sweep) and secret value rotation, each
// under every fault, through the service's real SDK clients and the fault proxies. No leases, and a
// short grace period (past the env's floor, as the rotation tests run it), so a sweep ends in a test.
const ENV = { AWS_REQUEST_TIMEOUT_MS: "400", ROTATION_LEASE_SECONDS: "0", ROTATION_PAGE_SIZE: "3" };
const TENANT = "rotating";
/**
 * A lasting fault here faults three attempts in a row: all the SDK makes, so the call that meets it
 * fails for good. Unbounded, a sweep would meet it on every item it tries, for no further insight.
 */
const LASTING = 3;
const SECRETS = ["a", "b", "c"];
const GENERATED = "generated";

type Target = { readonly proxy: "dynamo" | "kms" } & Omit<FaultRule, "fault" | "count">;
const GENERATE_DATA_KEY: Target = { proxy: "kms", operations: ["GenerateDataKey"] };
const SECRET_WRITES: Target = { proxy: "dynamo", match: secretItemWrite };
const SWEEP_IO: readonly Target[] = [
  SECRET_WRITES,
  { proxy: "dynamo", operations: ["Query", "Scan", "GetItem", "BatchGetItem"] },
];

beforeAll(() => {
  for (const [key, value] of Object.entries(SDK_ENV)) vi.stubEnv(key, value);
});
afterAll(() => {
  vi.unstubAllEnvs();
});

it.concurrent.each(FAULTS)(
  "$name during DEK rotation, its sweep and secret rotation: success after retry or a typed 503, and afterwards every value reads back and the chain verifies",
  async ({ fault, transient }) => {
    const s: FaultStack = await startFaultStack({
      env: ENV,
      rotation: { retireGraceMs: TEST_RETIRE_GRACE_MS },
    });
    try {
      const h = s.harness;
      const admin = await h.token("admin");
      const arm = (target: Target, count = LASTING) =>
        (target.proxy === "dynamo" ? s.dynamoProxy : s.kmsProxy).inject({
          ...(target.operations === undefined ? {} : { operations: target.operations }),
          ...(target.match === undefined ? {} : { match: target.match }),
          count,
          fault,
        });
      const lasting = fault.kind !== "latency";
      expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } })).status).toBe(
        201,
      );
      const ledger = new WriteLedger();
      for (const name of SECRETS) {
        for (const value of [`${name}-1`, `${name}-2`]) {
          const put = await h.call("PUT", `/v1/tenants/${TENANT}/secrets/${name}`, {
            token: admin,
            body: { value },
          });
          expect(await ledger.note(put, TENANT, name, value)).toBeDefined();
        }
      }
      const generated = `/v1/tenants/${TENANT}/secrets/${GENERATED}`;
      const first = await h.call("PUT", generated, { token: admin, body: { value: "seed-value" } });
      expect(await ledger.note(first, TENANT, GENERATED, "seed-value")).toBe(1);
      const policy = await h.call("PUT", `${generated}/rotation`, {
        token: admin,
        body: { generator: { kind: "token", length: 32 } },
      });
      expect(policy.status, policy.text).toBe(200);

      // The new DEK comes from KMS GenerateDataKey: a lasting fault refuses the rotation and creates
      // nothing; a transient one is retried into DEK v2.
      const rotateDek = () => h.call("POST", `/v1/tenants/${TENANT}/rotate-dek`, { token: admin });
      let armed = arm(GENERATE_DATA_KEY);
      const refused = await rotateDek();
      armed.remove();
      if (lasting)
        expect(await expectSuccessOrUnavailable(refused, "rotate-dek")).toBe("keyring_unavailable");
      armed = arm(GENERATE_DATA_KEY, transient);
      const rotated = lasting ? await rotateDek() : refused;
      armed.remove();
      expect(rotated.status, rotated.text).toBe(200);
      expect(await rotated.json()).toEqual({ tenantId: TENANT, dekVersion: 2 });

      // The sweep under the fault: the run answers, or refuses with a typed 503; it never half-seals.
      for (const target of SWEEP_IO) {
        armed = arm(target, lasting ? LASTING : transient);
        const run = await h.call("POST", "/v1/rotation/run", { token: admin });
        armed.remove();
        await expectSuccessOrUnavailable(run, "rotation run");
      }
      armed = arm(SECRET_WRITES, transient);
      await runUntilSwept(h, TENANT, "faults");
      armed.remove();
      const status = await (await h.call("GET", `/v1/tenants/${TENANT}/rotation`, { token: admin })).json();
      expect(Object.keys(status.itemsByDekVersion)).toEqual(["2"]);
      expect(status.retiredDataKeys).toContainEqual(expect.objectContaining({ version: 1 }));

      // Secret value rotation: generate, stage and promote a new value. A lasting fault on its writes
      // refuses it typed; the same clientRequestToken then finishes it, once.
      const rotate = () =>
        h.call("POST", `${generated}/rotate`, {
          token: admin,
          body: { clientRequestToken: "fault-rotation-0001" },
        });
      armed = arm(SECRET_WRITES);
      const during = await rotate();
      armed.remove();
      const outcome = await expectSuccessOrUnavailable(during, "secret rotation");
      if (!lasting) expect(outcome).toBe("ok");
      armed = arm(SECRET_WRITES, transient);
      const done = await rotate();
      armed.remove();
      expect(done.status, done.text).toBe(200);
      expect(await done.json()).toMatchObject({ status: "rotated", version: 2, previousVersion: 1 });
      expect(await expectHistoryIntact(h, admin, TENANT, GENERATED)).toBe(2);

      s.dynamoProxy.clear();
      s.kmsProxy.clear();
      await ledger.expectAllReadBack(h, admin);
      for (const name of SECRETS) await expectHistoryIntact(h, admin, TENANT, name);
      await expectChainIntact(h, admin, TENANT);
      expect(h.runtime.metrics.count("DecryptFailures")).toBe(0);
    } finally {
      await s.close();
    }
  },
  50_000,
);
