import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SecretRepository } from "../../shared/storage/secret-repository.ts";
import { auditAppends, type InjectedFault, injectFault, type SdkCall } from "../../testing/faults.ts";
import { type ApiResponse, type Harness, startHarness } from "../../testing/harness.ts";

let h: Harness;
let admin: string;
let fault: InjectedFault;
const SECRET = "sk-live-audited-value";
const reason = { "x-audit-reason": "audit fail-closed test" };

const read = (name: string, token = admin) =>
  h.call("GET", `/v1/tenants/acme/secrets/${name}`, { token, headers: reason });
const count = (name: "AuditWriteFailures" | "AuthDenied") => h.runtime.metrics.count(name);

async function expectAuditUnavailable(response: ApiResponse): Promise<void> {
  expect(response.status).toBe(503);
  expect(await response.json()).toEqual({
    error: { code: "audit_unavailable", message: expect.any(String) },
  });
}

/** Audit events of a scope that carry the given request id, read once audit writes work again. */
async function auditEventsFor(scope: string, requestId: string | null): Promise<unknown[]> {
  const path = scope === "_system" ? "/v1/audit?limit=999" : `/v1/tenants/${scope}/audit?limit=999`;
  const body = await (await h.call("GET", path, { token: admin })).json();
  return body.events.filter((event: { requestId: string }) => event.requestId === requestId);
}

beforeAll(async () => {
  // Each denial is checked by its own request id, so repeats are not collapsed here (see audit-queries).
  h = await startHarness({ env: { AUDIT_DENIAL_WINDOW_SECONDS: "0" } });
  admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } })).status).toBe(
    201,
  );
  const put = await h.call("PUT", "/v1/tenants/acme/secrets/db-password", {
    token: admin,
    body: { value: SECRET },
  });
  expect(put.status).toBe(200);
  // Fault injection, not a mock: the service's real DynamoDB client, with only audit appends failing.
  fault = injectFault(h.table, auditAppends);
  fault.disarm();
});
afterEach(() => fault.disarm());
afterAll(async () => {
  fault.remove();
  await h.close();
});

describe("reads fail closed when the audit record cannot be written", () => {
  it("a read whose audit record cannot be written is 503 audit_unavailable and carries no value", async () => {
    const failuresBefore = count("AuditWriteFailures");
    const refusedBefore = fault.refused;
    fault.arm();
    const response = await read("db-password");
    fault.disarm();
    await expectAuditUnavailable(response);
    expect(response.text).not.toContain(SECRET);
    expect(fault.refused).toBe(refusedBefore + 1);
    expect(count("AuditWriteFailures")).toBe(failuresBefore + 1);
    expect(await auditEventsFor("acme", response.headers.get("x-request-id"))).toEqual([]);
  });

  it("only audit writes were refused: the same read succeeds once the audit store is back", async () => {
    fault.arm();
    expect((await read("db-password")).status).toBe(503);
    fault.disarm();
    const response = await read("db-password");
    expect(response.status).toBe(200);
    expect((await response.json()).value).toBe(SECRET);
    expect(await auditEventsFor("acme", response.headers.get("x-request-id"))).toEqual([
      expect.objectContaining({ action: "secret.read", outcome: "success", secretName: "db-password" }),
    ]);
  });

  it("an older version's read is refused the same way", async () => {
    await h.call("PUT", "/v1/tenants/acme/secrets/rotated", { token: admin, body: { value: "old-value" } });
    await h.call("PUT", "/v1/tenants/acme/secrets/rotated", { token: admin, body: { value: "new-value" } });
    fault.arm();
    const response = await h.call("GET", "/v1/tenants/acme/secrets/rotated?version=1", {
      token: admin,
      headers: reason,
    });
    await expectAuditUnavailable(response);
    expect(response.text).not.toContain("old-value");
  });
});

describe("concurrent reads in one process share one write of their records", () => {
  const READS = 8;
  const concurrentReads = () => Promise.all(Array.from({ length: READS }, () => read("db-password")));
  const batchedAppend = (call: SdkCall) => call.commandName === "BatchWriteItemCommand" && auditAppends(call);

  it("each read's record is stored under its own key and chained once", async () => {
    let batches = 0;
    const counter = injectFault(h.table, (call) => {
      if (batchedAppend(call)) batches += 1;
      return false;
    });
    try {
      const responses = await concurrentReads();
      for (const response of responses) expect(response.status).toBe(200);
      expect(batches).toBeGreaterThan(0);
      expect(batches).toBeLessThan(READS);
      for (const response of responses) {
        expect(await auditEventsFor("acme", response.headers.get("x-request-id"))).toEqual([
          expect.objectContaining({ action: "secret.read", outcome: "success" }),
        ]);
      }
    } finally {
      counter.remove();
    }
  });

  it("when that write fails, every read that shared it is 503 audit_unavailable and carries no value", async () => {
    const failuresBefore = count("AuditWriteFailures");
    let batchesRefused = 0;
    const shared = injectFault(h.table, (call) => {
      if (batchedAppend(call)) batchesRefused += 1;
      return auditAppends(call);
    });
    let responses: ApiResponse[];
    try {
      responses = await concurrentReads();
    } finally {
      shared.remove();
    }
    expect(batchesRefused).toBeGreaterThan(0);
    expect(count("AuditWriteFailures")).toBe(failuresBefore + READS);
    for (const response of responses) {
      await expectAuditUnavailable(response);
      expect(response.text).not.toContain(SECRET);
      expect(await auditEventsFor("acme", response.headers.get("x-request-id"))).toEqual([]);
    }
  });
});

describe("other successful operations are not answered without their audit record", () => {
  it.each([
    ["a secret list", "GET", "/v1/tenants/acme/secrets", undefined, "db-password"],
    ["a tenant audit read", "GET", "/v1/tenants/acme/audit", undefined, "secret.read"],
    [
      "a token creation",
      "POST",
      "/v1/tokens",
      { role: "runner", tenants: ["acme"], ttlSeconds: 600 },
      "sbx_",
    ],
  ])(
    "%s whose audit record cannot be written is 503 audit_unavailable without its result",
    async (_label, method, path, body, hidden) => {
      const failuresBefore = count("AuditWriteFailures");
      fault.arm();
      const response = await h.call(method, path, { token: admin, ...(body === undefined ? {} : { body }) });
      fault.disarm();
      await expectAuditUnavailable(response);
      expect(response.text).not.toContain(hidden);
      expect(count("AuditWriteFailures")).toBe(failuresBefore + 1);
    },
  );
});

describe("a change whose attempt cannot be recorded", () => {
  it("is answered 503 audit_unavailable and nothing is committed", async () => {
    const failuresBefore = count("AuditWriteFailures");
    fault.arm();
    const response = await h.call("PUT", "/v1/tenants/acme/secrets/unrecorded", {
      token: admin,
      body: { value: "never-stored" },
    });
    fault.disarm();
    await expectAuditUnavailable(response);
    expect(count("AuditWriteFailures")).toBe(failuresBefore + 1);
    expect(await new SecretRepository(h.table).getHead("acme", "unrecorded")).toBeUndefined();
    expect((await read("unrecorded")).status).toBe(404);
  });

  it("retried once audits work again, it creates version 1: the refused attempt left nothing behind", async () => {
    fault.arm();
    const first = await h.call("PUT", "/v1/tenants/acme/secrets/retried", {
      token: admin,
      body: { value: "x" },
    });
    fault.disarm();
    expect(first.status).toBe(503);
    const retry = await h.call("PUT", "/v1/tenants/acme/secrets/retried", {
      token: admin,
      body: { value: "x" },
    });
    expect(await retry.json()).toEqual({ name: "retried", version: 1 });
  });

  it("a delete or a token revocation is refused the same way and changes nothing", async () => {
    const issued = await (
      await h.call("POST", "/v1/tokens", {
        token: admin,
        body: { role: "runner", tenants: ["acme"], ttlSeconds: 600 },
      })
    ).json();
    fault.arm();
    const deleted = await h.call("DELETE", "/v1/tenants/acme/secrets/db-password", { token: admin });
    const revoked = await h.call("DELETE", `/v1/tokens/${issued.id}`, { token: admin });
    fault.disarm();
    await expectAuditUnavailable(deleted);
    await expectAuditUnavailable(revoked);
    expect((await read("db-password")).status).toBe(200);
    expect((await read("db-password", issued.token)).status).toBe(200);
  });
});

describe("a change whose outcome cannot be recorded", () => {
  it("is committed and answered normally, with its attempt on the record", async () => {
    const failuresBefore = count("AuditWriteFailures");
    // Only the second audit append of the request fails: the attempt lands, the outcome does not.
    let appends = 0;
    const outcomeFault = injectFault(h.table, (call) => auditAppends(call) && ++appends === 2);
    const response = await h.call("PUT", "/v1/tenants/acme/secrets/half-recorded", {
      token: admin,
      body: { value: "stored" },
    });
    outcomeFault.remove();
    expect(await response.json()).toEqual({ name: "half-recorded", version: 1 });
    expect(count("AuditWriteFailures")).toBe(failuresBefore + 1);
    const events = await auditEventsFor("acme", response.headers.get("x-request-id"));
    expect(events).toEqual([expect.objectContaining({ action: "secret.write", outcome: "attempt" })]);
  });
});

describe("denials are refused as denials even when their audit record cannot be written", () => {
  let runner: string;
  let foreignOperator: string;
  beforeAll(async () => {
    runner = await h.token("runner", ["acme"]);
    foreignOperator = await h.token("operator", ["globex"]);
  });

  it.each([
    [
      "a request without a token",
      () => h.call("GET", "/v1/tenants/acme/secrets/db-password", { headers: reason }),
      401,
      "unauthenticated",
    ],
    ["a malformed token", () => read("db-password", "sbx_not-a-token"), 401, "unauthenticated"],
    [
      "a runner writing",
      () => h.call("PUT", "/v1/tenants/acme/secrets/db-password", { token: runner, body: { value: "x" } }),
      403,
      "forbidden",
    ],
    ["an operator of another tenant reading", () => read("db-password", foreignOperator), 403, "forbidden"],
  ] as const)("%s is still %i %s and counted in AuthDenied", async (_label, send, status, code) => {
    const deniedBefore = count("AuthDenied");
    const failuresBefore = count("AuditWriteFailures");
    const refusedBefore = fault.refused;
    fault.arm();
    const response = await send();
    fault.disarm();
    expect(response.status).toBe(status);
    expect((await response.json()).error.code).toBe(code);
    expect(response.text).not.toContain(SECRET);
    expect(count("AuthDenied")).toBe(deniedBefore + 1);
    // The denial's record was attempted and lost; best effort means the caller is not told.
    expect(fault.refused).toBe(refusedBefore + 1);
    expect(count("AuditWriteFailures")).toBe(failuresBefore + 1);
  });

  it("a read of a missing secret is still 404 not_found", async () => {
    fault.arm();
    const response = await read("no-such-secret");
    fault.disarm();
    expect(response.status).toBe(404);
    expect((await response.json()).error.code).toBe("not_found");
  });
});
