import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { auditAppend } from "../../testing/fault-proxy.ts";
import {
  expectChainIntact,
  expectSuccessOrUnavailable,
  FAULTS,
  SDK_ENV,
  startFaultStack,
  WriteLedger,
} from "../../testing/fault-stack.ts";

// Audit appends are the service's PutItems into AUDIT# partitions; the proxy faults exactly those, on
// the wire, while everything else reaches dynalite. Each fault has its own stack and they run at once.
const TENANT = "audited";
const REASON = { "x-audit-reason": "fault test" };
const VALUE_MARK = "audit-fault-value";
const ENV = { AWS_REQUEST_TIMEOUT_MS: "400", DATA_KEY_CACHE_MAX_USES: "1" };

beforeAll(() => {
  for (const [key, value] of Object.entries(SDK_ENV)) vi.stubEnv(key, value);
});
afterAll(() => {
  vi.unstubAllEnvs();
});

async function auditedStack() {
  const s = await startFaultStack({ env: ENV });
  const admin = await s.harness.token("admin");
  const created = await s.harness.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } });
  expect(created.status).toBe(201);
  const ledger = new WriteLedger();
  let writes = 0;
  return {
    s,
    admin,
    ledger,
    async write() {
      writes += 1;
      const value = `${VALUE_MARK}-${writes}`;
      const response = await s.harness.call("PUT", `/v1/tenants/${TENANT}/secrets/s`, {
        token: admin,
        body: { value },
      });
      await ledger.note(response, TENANT, "s", value);
      return response;
    },
    read: () => s.harness.call("GET", `/v1/tenants/${TENANT}/secrets/s`, { token: admin, headers: REASON }),
    count: (name: "AuditWriteFailures" | "DecryptFailures") => s.harness.runtime.metrics.count(name),
  };
}

it.concurrent.each(FAULTS)(
  "$name on every audit append: success after retry, or audit_unavailable with each failed record counted and no value out; the chain verifies",
  async ({ fault, transient }) => {
    const { s, admin, ledger, write, read, count } = await auditedStack();
    try {
      // Transient: both requests succeed after the SDK's retry, and no record failed.
      let armed = s.dynamoProxy.inject({ match: auditAppend, fault, count: transient });
      const written = await write();
      expect(written.status, written.text).toBe(200);
      const got = await read();
      expect(got.status, got.text).toBe(200);
      armed.remove();
      expect(armed.fired).toBe(transient);
      expect(count("AuditWriteFailures")).toBe(0);

      // Lasting: both are refused, typed, and a read refused for its record gives no value.
      armed = s.dynamoProxy.inject({ match: auditAppend, fault });
      const refusedWrite = await write();
      const refusedRead = await read();
      armed.remove();
      if (fault.kind === "latency") {
        expect([refusedWrite.status, refusedRead.status]).toEqual([200, 200]);
        expect(count("AuditWriteFailures")).toBe(0);
      } else {
        expect(await expectSuccessOrUnavailable(refusedWrite, "write")).toBe("audit_unavailable");
        expect(await expectSuccessOrUnavailable(refusedRead, "read")).toBe("audit_unavailable");
        expect(refusedRead.text).not.toContain(VALUE_MARK);
        expect(count("AuditWriteFailures")).toBeGreaterThanOrEqual(2);
      }

      // A dropped append may have landed though the request was refused; either way the chain holds.
      await expectChainIntact(s.harness, admin, TENANT);
      await ledger.expectAllReadBack(s.harness, admin);
      expect(count("DecryptFailures")).toBe(0);
    } finally {
      await s.close();
    }
  },
  45_000,
);

it.concurrent("DecryptFailures counts KMS's InvalidCiphertextException on a DEK unwrap, and not KMS being unavailable", async () => {
  const { s, write, read, count } = await auditedStack();
  try {
    expect((await write()).status).toBe(200);
    const throttled = s.kmsProxy.inject({
      operations: ["Decrypt"],
      fault: { kind: "throttle", error: "ThrottlingException" },
    });
    const unavailable = await read();
    throttled.remove();
    expect(await expectSuccessOrUnavailable(unavailable, "throttled read")).toBe("keyring_unavailable");
    expect(count("DecryptFailures")).toBe(0);

    const invalid = s.kmsProxy.inject({
      operations: ["Decrypt"],
      fault: { kind: "error", status: 400, type: "InvalidCiphertextException" },
      count: 1,
    });
    const refused = await read();
    invalid.remove();
    // The documented answer for a value that fails to decrypt (docs/api.md): fail closed, typed.
    expect(refused.status, refused.text).toBe(500);
    expect(await refused.json()).toEqual({ error: { code: "decrypt_failed", message: expect.any(String) } });
    expect(refused.text).not.toContain(VALUE_MARK);
    expect(count("DecryptFailures")).toBe(1);
    // Not retried: the SDK takes it as the final answer it is.
    expect(invalid.fired).toBe(1);
    expect((await read()).status).toBe(200);
  } finally {
    await s.close();
  }
}, 45_000);
