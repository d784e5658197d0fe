import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainedAuditRecord } from "../../shared/domain/audit-chain.ts";
import { AuthorizationError } from "../../shared/domain/errors.ts";
import { AUDIT_ACTIONS, isAllowed, OPERATIONS, type Operation } from "../../shared/domain/operations.ts";
import { type Principal, ROLES, SYSTEM_SCOPE } from "../../shared/domain/types.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";

// The operations table is the one vocabulary of what exists; the gate reads permission and scope from it.

const principal = (role: Principal["role"], tenants: string[] = ["acme"]): Principal => ({
  actor: `t-${role}`,
  role,
  tenants,
});
const callable = Object.keys(OPERATIONS).filter(
  (name): name is Operation => OPERATIONS[name as keyof typeof OPERATIONS].permission !== null,
);

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

const records = async (scope: string): Promise<ChainedAuditRecord[]> => {
  const page = await h.runtime.auditQueries.list(
    { requestId: "look", principal: principal("admin", ["*"]) },
    scope,
    999,
  );
  return page.items;
};

describe("the operations table", () => {
  it("is the list of audit actions, in its own order", () => {
    expect(AUDIT_ACTIONS).toEqual(Object.keys(OPERATIONS));
    expect(AUDIT_ACTIONS).toContain("secret.read");
  });

  it("leaves what the service records on its own out of reach of every role", () => {
    const ownRecords = Object.entries(OPERATIONS).filter(([, spec]) => spec.permission === null);
    // The unwrap routes are authorised by the wrapping token itself, never by a role's permission.
    expect(ownRecords.map(([name]) => name).sort()).toEqual([
      "audit.reanchor",
      "kms.call",
      "request.denied",
      "tenant.reencrypt",
      "wrap.lookup",
      "wrap.unwrap",
    ]);
  });

  it("gives admins every callable operation on every scope, and other roles only their tenants", () => {
    for (const operation of callable) {
      expect(isAllowed(principal("admin", ["*"]), operation, "anything")).toBe(true);
      // The caller's own token is the one scope every token reaches (GET /v1/tokens/self).
      if (OPERATIONS[operation].scope === "self") continue;
      for (const role of ROLES.filter((name) => name !== "admin")) {
        expect(isAllowed(principal(role), operation, "other")).toBe(false);
        expect(isAllowed(principal(role), operation, SYSTEM_SCOPE)).toBe(false);
      }
    }
  });

  it("fails closed when the scope is missing or empty, for admins too", () => {
    // The types rule an undefined scope out; a caller that breaks them must get a refusal, not a pass.
    const missing = undefined as unknown as string;
    for (const operation of callable) {
      for (const role of ROLES) {
        const who = principal(role, role === "admin" ? ["*"] : ["acme", missing]);
        expect(isAllowed(who, operation, missing)).toBe(false);
        expect(isAllowed(who, operation, "")).toBe(false);
      }
    }
  });

  it("grants each role the permissions it had: runner reads and lists, auditor reads the trail", () => {
    const allowed = (role: Principal["role"]) =>
      callable.filter((op) => isAllowed(principal(role), op, "acme"));
    expect(allowed("runner").sort()).toEqual(["secret.list", "secret.read", "secret.versions", "token.self"]);
    expect(allowed("auditor").sort()).toEqual([
      "audit.export",
      "audit.head",
      "audit.read",
      "audit.verify",
      "tenant.deletion-certificate",
      "token.self",
    ]);
    expect(allowed("operator").sort()).toEqual(
      [
        "rotation.read",
        "secret.delete",
        "secret.list",
        "secret.promote",
        "secret.read",
        "secret.rollback",
        "secret.rotate",
        "secret.rotation-policy",
        "secret.write",
        "tenant.read",
        "tenant.rotate-dek",
        // Version lifecycle (issue 12 item 5).
        "secret.versions",
        "secret.destroy-version",
        "secret.undelete",
        "secret.purge",
        // The kill switch: an operator may seal its own tenant, and only an admin unseals.
        "tenant.seal",
        "token.self",
        // Break-glass: an operator asks and activates what it asked for; an admin approves.
        "breakglass.request",
        "breakglass.activate",
      ].sort(),
    );
  });
});

describe("the operation gate", () => {
  it("acts in the system scope for a system operation, whatever tenant the target names", async () => {
    const ctx = { requestId: "r-system", principal: principal("admin", ["*"]) };
    const operation = await h.runtime.gate.begin(ctx, "kek.read", { tenantId: "acme" });
    await operation.succeeded();
    const mine = (await records(SYSTEM_SCOPE)).filter((record) => record.requestId === "r-system");
    expect(mine).toMatchObject([{ action: "kek.read", outcome: "success", tenantId: SYSTEM_SCOPE }]);
  });

  it("refuses a tenant operation that names no tenant, or names the system scope, as a programming error", async () => {
    const ctx = { requestId: "r-none", principal: principal("admin", ["*"]) };
    await expect(h.runtime.gate.begin(ctx, "secret.list")).rejects.toThrow(TypeError);
    await expect(h.runtime.gate.begin(ctx, "secret.list", { tenantId: SYSTEM_SCOPE })).rejects.toThrow(
      TypeError,
    );
  });

  it("records a refusal under the operation's own name, against the scope it tried", async () => {
    const admin = await h.token("admin");
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "gated" } })).status).toBe(
      201,
    );
    const ctx = { requestId: "r-denied", principal: principal("runner") };
    await expect(
      h.runtime.gate.begin(ctx, "secret.write", { tenantId: "gated", secretName: "k" }),
    ).rejects.toBeInstanceOf(AuthorizationError);
    const mine = (await records("gated")).filter((record) => record.requestId === "r-denied");
    // A tenant that does not exist is no scope to record against: such a refusal goes to _system.
    await expect(
      h.runtime.gate.begin({ ...ctx, requestId: "r-nowhere" }, "secret.write", { tenantId: "nowhere" }),
    ).rejects.toBeInstanceOf(AuthorizationError);
    expect((await records(SYSTEM_SCOPE)).filter((record) => record.requestId === "r-nowhere")).toMatchObject([
      { tenantId: SYSTEM_SCOPE, detail: "names tenant nowhere, which does not exist" },
    ]);
    expect(mine).toMatchObject([
      { action: "secret.write", outcome: "denied", secretName: "k", actor: "t-runner", role: "runner" },
    ]);
  });

  it("writes the attempt before a change and its outcome after, with what the change describes", async () => {
    const ctx = { requestId: "r-change", principal: principal("admin", ["*"]) };
    const operation = await h.runtime.gate.begin(ctx, "secret.write", {
      tenantId: "gated",
      secretName: "k",
      detail: "asked",
    });
    const seenDuring: string[] = [];
    await operation.change(
      async () => {
        seenDuring.push(
          ...(await records("gated")).filter((r) => r.requestId === "r-change").map((r) => r.outcome),
        );
        return 7;
      },
      (version) => ({ version }),
    );
    expect(seenDuring).toEqual(["attempt"]);
    const mine = (await records("gated")).filter((record) => record.requestId === "r-change").reverse();
    expect(mine).toMatchObject([
      { outcome: "attempt", detail: "asked" },
      { outcome: "success", detail: "asked", version: 7 },
    ]);
  });
});
