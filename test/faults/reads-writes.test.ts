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

// The service's own SDK clients (DynamoDB, the KMS keyring, the KMS audit MAC key) reach dynalite and
// the KMS test endpoint only through fault proxies; every outcome is checked through the HTTP API.
// Each fault gets its own stack (so one fault's drained SDK retry quota cannot change another's
// outcome), and the faults run concurrently: most of their time is the SDK's backoff.

type Target = { readonly name: string; readonly proxy: "dynamo" | "kms" } & Omit<FaultRule, "fault">;
const TARGETS: readonly Target[] = [
  { name: "DynamoDB secret item writes", proxy: "dynamo", match: secretItemWrite },
  {
    name: "DynamoDB reads (token, tenant, secret)",
    proxy: "dynamo",
    operations: ["GetItem", "BatchGetItem"],
  },
  { name: "KMS Decrypt of the DEK", proxy: "kms", operations: ["Decrypt"] },
];

const TENANT = "faults";
const REASON = { "x-audit-reason": "fault test" };
// Every read and write unwraps the DEK through KMS; a short SDK timeout keeps a hang to about a second.
const ENV = { DATA_KEY_CACHE_MAX_USES: "1", AWS_REQUEST_TIMEOUT_MS: "400" };

beforeAll(() => {
  for (const [key, value] of Object.entries(SDK_ENV)) vi.stubEnv(key, value);
});
afterAll(() => {
  vi.unstubAllEnvs();
});

it.concurrent.each(FAULTS)(
  "$name in DynamoDB writes, DynamoDB reads and KMS Decrypt: success after retry, or a typed 503; nothing lost or half-written; the chain verifies",
  async ({ name: faultName, fault, transient }) => {
    const s: FaultStack = await startFaultStack({ env: ENV });
    try {
      const h = s.harness;
      const admin = await h.token("admin");
      const created = await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } });
      expect(created.status).toBe(201);
      const ledger = new WriteLedger();
      let written = 0;
      let auditUnavailable = 0;
      const arm = (target: Target, count?: number) =>
        (target.proxy === "dynamo" ? s.dynamoProxy : s.kmsProxy).inject({
          ...(target.operations === undefined ? {} : { operations: target.operations }),
          ...(target.match === undefined ? {} : { match: target.match }),
          ...(count === undefined ? {} : { count }),
          fault,
        });
      const write = async (secret: string) => {
        written += 1;
        const value = `${faultName}-${written}`;
        const response = await h.call("PUT", `/v1/tenants/${TENANT}/secrets/${secret}`, {
          token: admin,
          body: { value },
        });
        await ledger.note(response, TENANT, secret, value);
        return { response, value };
      };
      const read = (secret: string) =>
        h.call("GET", `/v1/tenants/${TENANT}/secrets/${secret}`, { token: admin, headers: REASON });
      const settle = async (response: Awaited<ReturnType<typeof read>>, what: string) => {
        const code = await expectSuccessOrUnavailable(response, what);
        if (code === "audit_unavailable") auditUnavailable += 1;
        return code;
      };

      for (const [index, target] of TARGETS.entries()) {
        // A transient fault: the SDK's later attempt gets through, and the caller never sees it.
        const transientSecret = `transient-${index}`;
        const onWrite = arm(target, transient);
        const { response, value } = await write(transientSecret);
        onWrite.remove();
        expect(response.status, `write through ${target.name}: ${response.text}`).toBe(200);
        const onRead = arm(target, transient);
        const got = await read(transientSecret);
        onRead.remove();
        expect(got.status, `read through ${target.name}: ${got.text}`).toBe(200);
        expect(await got.json()).toMatchObject({ value });
        expect(onWrite.fired + onRead.fired, target.name).toBeGreaterThan(0);

        // A lasting fault on the same secret: every attempt meets it, so the request ends in a typed
        // 503 (or, for latency alone, succeeds late).
        const lastingSecret = transientSecret;
        const lasting = arm(target);
        const outcomes = [
          await settle((await write(lastingSecret)).response, `write during ${target.name}`),
          await settle(await read(lastingSecret), `read during ${target.name}`),
        ];
        lasting.remove();
        if (fault.kind === "latency") expect(outcomes, target.name).toEqual(["ok", "ok"]);
        else expect(outcomes.filter((outcome) => outcome !== "ok").length, target.name).toBeGreaterThan(0);
      }

      s.dynamoProxy.clear();
      s.kmsProxy.clear();
      expect(ledger.size).toBeGreaterThanOrEqual(TARGETS.length);
      await ledger.expectAllReadBack(h, admin);
      for (const index of TARGETS.keys()) await expectHistoryIntact(h, admin, TENANT, `transient-${index}`);
      await expectChainIntact(h, admin, TENANT);
      const { metrics } = h.runtime;
      // Unavailability is not a decrypt failure: nothing here failed to authenticate.
      expect(metrics.count("DecryptFailures")).toBe(0);
      // Each request refused for its audit record counted the record that failed.
      expect(metrics.count("AuditWriteFailures")).toBeGreaterThanOrEqual(auditUnavailable);
      if (fault.kind === "latency") expect(metrics.count("AuditWriteFailures")).toBe(0);
    } finally {
      await s.close();
    }
  },
  45_000,
);
