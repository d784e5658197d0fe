import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditAction } from "../../shared/domain/operations.ts";
import type { AuditEvent, Role } from "../../shared/domain/types.ts";
import { SYSTEM_SCOPE } from "../../shared/domain/types.ts";
import { type ApiResponse, type Harness, startHarness } from "../../testing/harness.ts";
import { httpApiEvent, IAM_ACCOUNT, iamApiEvent } from "../../testing/http-api-event.ts";
import { lambdaCaller } from "../../testing/lambda-call.ts";

/*
 * The tenant-isolation matrix: every route, called by every role scoped to tenant "alpha", against
 * alpha and against "bravo". Each cell is its own test and works on its own secret, token or tenant,
 * so cells do not depend on one another or on their order.
 */

const ALPHA = "alpha";
const BRAVO = "bravo";
const ROLES = ["admin", "operator", "runner", "auditor"] as const satisfies readonly Role[];
const SHARED_NAME = "db-password";
const ALPHA_VALUE = "alpha-db-password-value";
// Canaries that exist only in bravo: none of them may reach a token scoped to alpha.
const BRAVO_VALUE = "BRAVO-CANARY-db-password-9c41";
const BRAVO_ONLY_NAME = "bravo-canary-private-name";
const BRAVO_ONLY_VALUE = "BRAVO-CANARY-private-value-77e2";
const REASON = { "x-audit-reason": "isolation matrix" };
/** A secret in both tenants with a rotation period, so both have something due. */
const ROTATING_NAME = "rotating-api-key";

let h: Harness;
let admin: string;
/** The app behind Hono's Lambda adapter, for the IAM callers' events. */
let viaLambda: ReturnType<typeof lambdaCaller>;
const tokens = {} as Record<Role, { token: string; id: string }>;
/** The id of the admin token that set bravo up; it appears only in bravo's audit trail. */
let bravoSetupAdminId: string;

interface Call {
  readonly method: string;
  readonly path: string;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  /** Where a refused attempt must be recorded: the tenant in the path, or the system scope. */
  readonly auditScope: string;
}

interface RouteCase {
  readonly route: string;
  readonly action: AuditAction;
  /** Tenant-scoped routes run once per target tenant; the others once per role. */
  readonly scoped: boolean;
  readonly roles: readonly Role[];
  readonly okStatus: number;
  /** Set on routes whose credential is a wrapping token in the body rather than a bearer token. */
  readonly credential?: "wrapping-token";
  /**
   * Left out of the /iam/v1 matrices, and why: the route acts on the caller's own bearer token or
   * break-glass request, which an IAM caller does not have, or its credential is the wrapping token.
   */
  readonly bearerOnly?: string;
  /** Builds the request, doing any admin set-up the cell needs (a secret to delete, a token to revoke). */
  prepare(target: string, cell: string): Promise<Call>;
  /** Checks the state the request left behind, whether it was granted or refused. */
  verify(target: string, cell: string, granted: boolean, response: ApiResponse): Promise<void>;
}

const adminRead = (tenant: string, name: string) =>
  h.call("GET", `/v1/tenants/${tenant}/secrets/${name}`, { token: admin, headers: REASON });

const sharedValueOf = (tenant: string) => (tenant === ALPHA ? ALPHA_VALUE : BRAVO_VALUE);

/** Victim tokens for the revoke cells, by cell. */
const victims = new Map<string, string>();

const ROUTES: readonly RouteCase[] = [
  {
    route: "GET /v1/tenants/:tenantId",
    action: "tenant.read",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 200,
    prepare: async (target) => ({ method: "GET", path: `/v1/tenants/${target}`, auditScope: target }),
    verify: async (target, _cell, granted, response) => {
      if (granted) expect((await response.json()).tenantId).toBe(target);
    },
  },
  {
    route: "PUT /v1/tenants/:tenantId/secrets/:name",
    action: "secret.write",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 200,
    prepare: async (target, cell) => ({
      method: "PUT",
      path: `/v1/tenants/${target}/secrets/put-${cell}`,
      body: { value: `written-by-${cell}` },
      auditScope: target,
    }),
    verify: async (target, cell, granted, response) => {
      const after = await adminRead(target, `put-${cell}`);
      if (granted) {
        expect(await response.json()).toEqual({ name: `put-${cell}`, version: 1 });
        expect(await after.json()).toMatchObject({ version: 1, value: `written-by-${cell}` });
      } else {
        expect(after.status).toBe(404);
      }
    },
  },
  {
    route: "GET /v1/tenants/:tenantId/secrets/:name",
    action: "secret.read",
    scoped: true,
    roles: ["admin", "operator", "runner"],
    okStatus: 200,
    prepare: async (target) => ({
      method: "GET",
      path: `/v1/tenants/${target}/secrets/${SHARED_NAME}`,
      headers: REASON,
      auditScope: target,
    }),
    verify: async (target, _cell, granted, response) => {
      if (granted) {
        expect(await response.json()).toMatchObject({
          name: SHARED_NAME,
          version: 1,
          value: sharedValueOf(target),
        });
      }
    },
  },
  {
    route: "GET /v1/tenants/:tenantId/secrets",
    action: "secret.list",
    scoped: true,
    roles: ["admin", "operator", "runner"],
    okStatus: 200,
    prepare: async (target) => ({ method: "GET", path: `/v1/tenants/${target}/secrets`, auditScope: target }),
    verify: async (target, _cell, granted, response) => {
      if (!granted) return;
      const names = (await response.json()).secrets.map((s: { name: string }) => s.name);
      expect(names).toContain(SHARED_NAME);
      // The positive control for the canary check: bravo's listing does hold bravo's private name.
      if (target === BRAVO) expect(names).toContain(BRAVO_ONLY_NAME);
      else expect(names).not.toContain(BRAVO_ONLY_NAME);
    },
  },
  {
    route: "DELETE /v1/tenants/:tenantId/secrets/:name",
    action: "secret.delete",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 204,
    prepare: async (target, cell) => {
      const put = await h.call("PUT", `/v1/tenants/${target}/secrets/del-${cell}`, {
        token: admin,
        body: { value: "to be deleted" },
      });
      expect(put.status).toBe(200);
      return { method: "DELETE", path: `/v1/tenants/${target}/secrets/del-${cell}`, auditScope: target };
    },
    verify: async (target, cell, granted) => {
      expect((await adminRead(target, `del-${cell}`)).status).toBe(granted ? 404 : 200);
    },
  },
  {
    route: "GET /v1/tenants/:tenantId/audit",
    action: "audit.read",
    scoped: true,
    roles: ["admin", "auditor"],
    okStatus: 200,
    prepare: async (target) => ({ method: "GET", path: `/v1/tenants/${target}/audit`, auditScope: target }),
    verify: async (target, _cell, granted, response) => {
      if (!granted) return;
      const events: AuditEvent[] = (await response.json()).events;
      expect(events.length).toBeGreaterThan(0);
      for (const event of events) expect(event.tenantId).toBe(target);
    },
  },
  {
    route: "GET /v1/tenants/:tenantId/audit/verify",
    action: "audit.verify",
    scoped: true,
    roles: ["admin", "auditor"],
    okStatus: 200,
    prepare: async (target) => ({
      method: "GET",
      path: `/v1/tenants/${target}/audit/verify`,
      auditScope: target,
    }),
    verify: async (target, _cell, granted, response) => {
      if (!granted) return;
      const body = await response.json();
      expect(body).toMatchObject({ scope: target, intact: true });
      expect(body.verifiedThrough).toBeGreaterThan(0);
    },
  },
  {
    route: "GET /v1/tenants/:tenantId/audit/head",
    action: "audit.head",
    scoped: true,
    roles: ["admin", "auditor"],
    okStatus: 200,
    prepare: async (target) => ({
      method: "GET",
      path: `/v1/tenants/${target}/audit/head`,
      auditScope: target,
    }),
    verify: async (target, _cell, granted, response) => {
      if (!granted) return;
      const body = await response.json();
      expect(body).toMatchObject({ scope: target, head: { sequence: expect.any(Number) } });
      const trail = await auditTrail(target);
      expect(trail.some((event) => event.action === "audit.head" && event.outcome === "success")).toBe(true);
    },
  },
  {
    route: "GET /v1/tenants/:tenantId/audit/export",
    action: "audit.export",
    scoped: true,
    roles: ["admin", "auditor"],
    okStatus: 200,
    prepare: async (target) => ({
      method: "GET",
      path: `/v1/tenants/${target}/audit/export`,
      auditScope: target,
    }),
    verify: async (target, _cell, granted, response) => {
      if (!granted) return;
      const lines = response.text
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line));
      expect(lines.pop()).toMatchObject({ end: true, records: lines.length });
      expect(lines.length).toBeGreaterThan(0);
      for (const record of lines) expect(record.tenantId).toBe(target);
    },
  },
  {
    route: "POST /v1/tenants",
    action: "tenant.create",
    scoped: false,
    roles: ["admin"],
    okStatus: 201,
    // A refused creation names a tenant that does not exist yet: it goes to _system, so that no
    // invented name opens a chain of its own (docs/audit-chain.md#denial-windows).
    prepare: async (_target, cell) => ({
      method: "POST",
      path: "/v1/tenants",
      body: { tenantId: `new-${cell}` },
      auditScope: SYSTEM_SCOPE,
    }),
    verify: async (_target, cell, granted) => {
      const tenant = await h.call("GET", `/v1/tenants/new-${cell}`, { token: admin });
      expect(tenant.status).toBe(granted ? 200 : 404);
    },
  },
  {
    route: "POST /v1/tokens",
    action: "token.create",
    scoped: false,
    roles: ["admin"],
    okStatus: 201,
    prepare: async () => ({
      method: "POST",
      path: "/v1/tokens",
      body: { role: "operator", tenants: [BRAVO], ttlSeconds: 600 },
      auditScope: SYSTEM_SCOPE,
    }),
    verify: async (_target, _cell, granted, response) => {
      if (!granted) return;
      const issued = await response.json();
      expect(issued.token).toMatch(/^sbx_/);
      expect(await h.runtime.tokens.isActive(issued.id)).toBe(true);
    },
  },
  {
    route: "DELETE /v1/tokens/:id",
    action: "token.revoke",
    scoped: false,
    roles: ["admin"],
    okStatus: 204,
    prepare: async (_target, cell) => {
      const victim = await h.runtime.tokens.issue("runner", [ALPHA], 3600);
      victims.set(cell, victim.id);
      return { method: "DELETE", path: `/v1/tokens/${victim.id}`, auditScope: SYSTEM_SCOPE };
    },
    verify: async (_target, cell, granted) => {
      expect(await h.runtime.tokens.isActive(victims.get(cell) ?? "")).toBe(!granted);
    },
  },
  {
    route: "GET /v1/audit",
    action: "audit.read",
    scoped: false,
    roles: ["admin"],
    okStatus: 200,
    prepare: async () => ({ method: "GET", path: "/v1/audit", auditScope: SYSTEM_SCOPE }),
    verify: async (_target, _cell, granted, response) => {
      if (granted) expect(Array.isArray((await response.json()).events)).toBe(true);
    },
  },
  {
    route: "GET /v1/audit/verify",
    action: "audit.verify",
    scoped: false,
    roles: ["admin"],
    okStatus: 200,
    prepare: async () => ({ method: "GET", path: "/v1/audit/verify", auditScope: SYSTEM_SCOPE }),
    verify: async (_target, _cell, granted, response) => {
      if (granted) expect(await response.json()).toMatchObject({ scope: SYSTEM_SCOPE, intact: true });
    },
  },
  {
    route: "GET /v1/audit/export",
    action: "audit.export",
    scoped: false,
    roles: ["admin"],
    okStatus: 200,
    prepare: async () => ({ method: "GET", path: "/v1/audit/export", auditScope: SYSTEM_SCOPE }),
    verify: async (_target, _cell, granted, response) => {
      if (granted) expect(JSON.parse(response.text.split("\n")[0] ?? "").tenantId).toBe(SYSTEM_SCOPE);
    },
  },
  {
    route: "POST /v1/tenants/:tenantId/rotate-dek",
    action: "tenant.rotate-dek",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 200,
    prepare: async (target) => ({
      method: "POST",
      path: `/v1/tenants/${target}/rotate-dek`,
      auditScope: target,
    }),
    verify: async (target, _cell, granted, response) => {
      if (granted) expect((await response.json()).tenantId).toBe(target);
      // Whoever rotated, the tenant's secrets still read back.
      expect(await (await adminRead(target, SHARED_NAME)).json()).toMatchObject({
        value: sharedValueOf(target),
      });
    },
  },
  {
    route: "GET /v1/tenants/:tenantId/rotation",
    action: "rotation.read",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 200,
    prepare: async (target) => ({
      method: "GET",
      path: `/v1/tenants/${target}/rotation`,
      auditScope: target,
    }),
    verify: async (target, _cell, granted, response) => {
      if (!granted) return;
      const body = await response.json();
      expect(body.tenantId).toBe(target);
      expect(
        Object.values(body.itemsByDekVersion).reduce((a: number, b) => a + (b as number), 0),
      ).toBeGreaterThan(0);
    },
  },
  {
    route: "GET /v1/tenants/:tenantId/rotation/due",
    action: "rotation.read",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 200,
    prepare: async (target) => ({
      method: "GET",
      // The page is of the secrets scanned, and the IAM callers' cells come after many more were written.
      path: `/v1/tenants/${target}/rotation/due?withinDays=30&limit=999`,
      auditScope: target,
    }),
    verify: async (target, _cell, granted, response) => {
      if (!granted) return;
      const names = (await response.json()).secrets.map((s: { name: string }) => s.name);
      expect(names).toContain(ROTATING_NAME);
      if (target === ALPHA) expect(names).not.toContain(BRAVO_ONLY_NAME);
    },
  },
  {
    route: "PUT /v1/tenants/:tenantId/secrets/:name/rotation",
    action: "secret.rotation-policy",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 200,
    prepare: async (target, cell) => {
      await putAsAdmin(target, `policy-${cell}`, "policy value");
      return {
        method: "PUT",
        path: `/v1/tenants/${target}/secrets/policy-${cell}/rotation`,
        body: { rotationPeriodDays: 30 },
        auditScope: target,
      };
    },
    verify: async (target, cell, granted) => {
      const list = await h.call("GET", `/v1/tenants/${target}/secrets?limit=999`, { token: admin });
      const entry = (await list.json()).secrets.find((s: { name: string }) => s.name === `policy-${cell}`);
      expect(entry.rotationDueAt !== undefined).toBe(granted);
    },
  },
  {
    route: "POST /v1/tenants/:tenantId/secrets/:name/rotate",
    action: "secret.rotate",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 200,
    prepare: async (target, cell) => {
      await putAsAdmin(target, `gen-${cell}`, "generated seed value");
      const policy = await h.call("PUT", `/v1/tenants/${target}/secrets/gen-${cell}/rotation`, {
        token: admin,
        body: { generator: { kind: "token", length: 32 } },
      });
      expect(policy.status).toBe(200);
      return {
        method: "POST",
        path: `/v1/tenants/${target}/secrets/gen-${cell}/rotate`,
        body: { clientRequestToken: `token-${cell}` },
        auditScope: target,
      };
    },
    verify: async (target, cell, granted) => {
      const after = await (await adminRead(target, `gen-${cell}`)).json();
      expect(after.version).toBe(granted ? 2 : 1);
    },
  },
  {
    route: "POST /v1/tenants/:tenantId/secrets/:name/promote",
    action: "secret.promote",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 200,
    prepare: async (target, cell) => {
      await putAsAdmin(target, `promote-${cell}`, "old value");
      const pending = await h.call("PUT", `/v1/tenants/${target}/secrets/promote-${cell}`, {
        token: admin,
        body: { value: "new value", stage: "pending" },
      });
      expect(pending.status).toBe(200);
      return {
        method: "POST",
        path: `/v1/tenants/${target}/secrets/promote-${cell}/promote`,
        body: {},
        auditScope: target,
      };
    },
    verify: async (target, cell, granted) => {
      const after = await (await adminRead(target, `promote-${cell}`)).json();
      expect(after.value).toBe(granted ? "new value" : "old value");
    },
  },
  {
    route: "POST /v1/tenants/:tenantId/secrets/:name/rollback",
    action: "secret.rollback",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 200,
    prepare: async (target, cell) => {
      await putAsAdmin(target, `rollback-${cell}`, "first value");
      await putAsAdmin(target, `rollback-${cell}`, "second value");
      return {
        method: "POST",
        path: `/v1/tenants/${target}/secrets/rollback-${cell}/rollback`,
        body: { version: 1 },
        auditScope: target,
      };
    },
    verify: async (target, cell, granted) => {
      const after = await (await adminRead(target, `rollback-${cell}`)).json();
      expect(after.value).toBe(granted ? "first value" : "second value");
    },
  },
  {
    route: "GET /v1/kek",
    action: "kek.read",
    scoped: false,
    roles: ["admin"],
    okStatus: 200,
    prepare: async () => ({ method: "GET", path: "/v1/kek", auditScope: SYSTEM_SCOPE }),
    verify: async (_target, _cell, granted, response) => {
      if (granted) expect((await response.json()).keks[0].configured).toBe("active");
    },
  },
  {
    route: "POST /v1/kek/rewrap",
    action: "kek.rewrap",
    scoped: false,
    roles: ["admin"],
    okStatus: 202,
    prepare: async () => ({ method: "POST", path: "/v1/kek/rewrap", auditScope: SYSTEM_SCOPE }),
    verify: async (_target, _cell, granted, response) => {
      if (granted) expect((await response.json()).state.phase).toBe("rewrap");
    },
  },
  {
    route: "GET /v1/health",
    action: "health.read",
    scoped: false,
    roles: ["admin"],
    okStatus: 200,
    prepare: async () => ({ method: "GET", path: "/v1/health", auditScope: SYSTEM_SCOPE }),
    verify: async (_target, _cell, granted, response) => {
      if (granted) expect((await response.json()).keyring.status).toBe("ok");
      else expect(response.text).not.toContain("activeKekId");
    },
  },
  {
    route: "POST /v1/rotation/run",
    action: "rotation.run",
    scoped: false,
    roles: ["admin"],
    okStatus: 200,
    prepare: async () => ({ method: "POST", path: "/v1/rotation/run", auditScope: SYSTEM_SCOPE }),
    verify: async (_target, _cell, granted, response) => {
      if (granted) expect((await response.json()).due.scanComplete).toBe(true);
    },
  },
  // Version lifecycle (issue 12 item 5).
  {
    route: "GET /v1/tenants/:tenantId/secrets/:name/versions",
    action: "secret.versions",
    scoped: true,
    roles: ["admin", "operator", "runner"],
    okStatus: 200,
    prepare: async (target) => ({
      method: "GET",
      path: `/v1/tenants/${target}/secrets/${SHARED_NAME}/versions`,
      auditScope: target,
    }),
    verify: async (_target, _cell, granted, response) => {
      if (!granted) return;
      const body = await response.json();
      expect(body.versions[0]).toMatchObject({ version: 1, labels: ["current"], destroyed: false });
      expect(response.text).not.toContain(ALPHA_VALUE);
    },
  },
  {
    route: "DELETE /v1/tenants/:tenantId/secrets/:name/versions/:version",
    action: "secret.destroy-version",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 204,
    prepare: async (target, cell) => {
      await putAsAdmin(target, `destroy-${cell}`, "version one");
      await putAsAdmin(target, `destroy-${cell}`, "version two");
      return {
        method: "DELETE",
        path: `/v1/tenants/${target}/secrets/destroy-${cell}/versions/1`,
        auditScope: target,
      };
    },
    verify: async (target, cell, granted) => {
      const read = await h.call("GET", `/v1/tenants/${target}/secrets/destroy-${cell}?version=1`, {
        token: admin,
        headers: REASON,
      });
      expect(read.status).toBe(granted ? 410 : 200);
    },
  },
  {
    route: "POST /v1/tenants/:tenantId/secrets/:name/undelete",
    action: "secret.undelete",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 200,
    prepare: async (target, cell) => {
      await putAsAdmin(target, `undelete-${cell}`, "undeleted value");
      const deleted = await h.call("DELETE", `/v1/tenants/${target}/secrets/undelete-${cell}`, {
        token: admin,
      });
      expect(deleted.status).toBe(204);
      return {
        method: "POST",
        path: `/v1/tenants/${target}/secrets/undelete-${cell}/undelete`,
        auditScope: target,
      };
    },
    verify: async (target, cell, granted) => {
      expect((await adminRead(target, `undelete-${cell}`)).status).toBe(granted ? 200 : 404);
    },
  },
  {
    route: "POST /v1/tenants/:tenantId/secrets/:name/purge",
    action: "secret.purge",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 204,
    prepare: async (target, cell) => {
      await putAsAdmin(target, `purge-${cell}`, "purged value");
      return {
        method: "POST",
        path: `/v1/tenants/${target}/secrets/purge-${cell}/purge`,
        auditScope: target,
      };
    },
    verify: async (target, cell, granted) => {
      expect((await adminRead(target, `purge-${cell}`)).status).toBe(granted ? 404 : 200);
    },
  },
  // Tenant deletion (issue 12 item 6). Only admins may delete, so a granted (admin) cell deletes a
  // tenant of its own rather than alpha or bravo, which every other cell needs; refused cells aim at
  // the target itself and must leave it standing.
  {
    route: "DELETE /v1/tenants/:tenantId",
    action: "tenant.delete",
    scoped: true,
    roles: ["admin"],
    okStatus: 200,
    prepare: async (target, cell) => {
      // Admin cells are `admin-<target>`, or `iam-admin-<target>` on the IAM rerun.
      const tenant = /(^|-)admin-/.test(cell) ? `gone-${cell}` : target;
      if (tenant !== target) {
        const created = await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: tenant } });
        expect(created.status).toBe(201);
        await putAsAdmin(tenant, "doomed", "shredded value");
      }
      return {
        method: "DELETE",
        path: `/v1/tenants/${tenant}`,
        body: { confirm: tenant },
        auditScope: tenant,
      };
    },
    verify: async (target, cell, granted, response) => {
      if (granted) {
        expect((await response.json()).certificate).toMatchObject({ tenantId: `gone-${cell}` });
        expect((await adminRead(`gone-${cell}`, "doomed")).status).toBe(410);
      } else {
        expect((await adminRead(target, SHARED_NAME)).status).toBe(200);
      }
    },
  },
  {
    // Neither alpha nor bravo is deleted, so a granted caller reaches the use case and finds none: 404.
    route: "GET /v1/tenants/:tenantId/deletion-certificate",
    action: "tenant.deletion-certificate",
    scoped: true,
    roles: ["admin", "auditor"],
    okStatus: 404,
    prepare: async (target) => ({
      method: "GET",
      path: `/v1/tenants/${target}/deletion-certificate`,
      auditScope: target,
    }),
    verify: async (_target, _cell, granted, response) => {
      if (granted) expect((await response.json()).error.code).toBe("not_found");
    },
  },
  {
    route: "POST /v1/tenants/:tenantId/seal",
    action: "tenant.seal",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 200,
    prepare: async (target) => ({
      method: "POST",
      path: `/v1/tenants/${target}/seal`,
      body: { reason: "isolation matrix" },
      auditScope: target,
    }),
    verify: async (target, _cell, granted) => {
      expect((await adminRead(target, SHARED_NAME)).status).toBe(granted ? 423 : 200);
      if (granted) await adminUnseal(`/v1/tenants/${target}/unseal`);
    },
  },
  {
    route: "POST /v1/tenants/:tenantId/unseal",
    action: "tenant.unseal",
    scoped: true,
    roles: ["admin"],
    okStatus: 200,
    prepare: async (target) => {
      await adminSeal(`/v1/tenants/${target}/seal`);
      return {
        method: "POST",
        path: `/v1/tenants/${target}/unseal`,
        body: { reason: "isolation matrix" },
        auditScope: target,
      };
    },
    verify: async (target, _cell, granted) => {
      expect((await adminRead(target, SHARED_NAME)).status).toBe(granted ? 200 : 423);
      if (!granted) await adminUnseal(`/v1/tenants/${target}/unseal`);
    },
  },
  {
    route: "POST /v1/seal",
    action: "system.seal",
    scoped: false,
    roles: ["admin"],
    okStatus: 200,
    prepare: async () => ({
      method: "POST",
      path: "/v1/seal",
      body: { reason: "isolation matrix" },
      auditScope: SYSTEM_SCOPE,
    }),
    verify: async (_target, _cell, granted) => {
      expect((await adminRead(ALPHA, SHARED_NAME)).status).toBe(granted ? 423 : 200);
      if (granted) await adminUnseal("/v1/unseal");
    },
  },
  {
    route: "POST /v1/unseal",
    action: "system.unseal",
    scoped: false,
    roles: ["admin"],
    okStatus: 200,
    prepare: async () => {
      await adminSeal("/v1/seal");
      return {
        method: "POST",
        path: "/v1/unseal",
        body: { reason: "isolation matrix" },
        auditScope: SYSTEM_SCOPE,
      };
    },
    verify: async (_target, _cell, granted) => {
      expect((await adminRead(BRAVO, SHARED_NAME)).status).toBe(granted ? 200 : 423);
      if (!granted) await adminUnseal("/v1/unseal");
    },
  },
  {
    route: "GET /v1/tokens",
    action: "token.list",
    scoped: false,
    roles: ["admin"],
    okStatus: 200,
    prepare: async () => ({ method: "GET", path: "/v1/tokens?limit=999", auditScope: SYSTEM_SCOPE }),
    verify: async (_target, _cell, granted, response) => {
      if (!granted) return;
      const listed = (await response.json()).tokens.map((t: { id: string }) => t.id);
      expect(listed).toContain(tokens.runner.id);
      expect(response.text).not.toContain("secretHash");
    },
  },
  {
    route: "GET /v1/tokens/self",
    bearerOnly: "the caller's own token",
    action: "token.self",
    scoped: false,
    roles: ["admin", "operator", "runner", "auditor"],
    okStatus: 200,
    prepare: async () => ({ method: "GET", path: "/v1/tokens/self", auditScope: SYSTEM_SCOPE }),
    verify: async (_target, _cell, granted, response) => {
      if (granted) expect(Object.values(tokens).map((t) => t.id)).toContain((await response.json()).id);
    },
  },
  {
    // The wrapping token is the credential (Vault's semantics): whoever holds it unwraps it, with or
    // without a bearer token of any role. The wrapped value here is alpha's.
    route: "POST /v1/unwrap",
    bearerOnly: "the wrapping token is the credential",
    action: "wrap.unwrap",
    credential: "wrapping-token",
    scoped: false,
    roles: ["admin", "operator", "runner", "auditor"],
    okStatus: 200,
    prepare: async () => ({
      method: "POST",
      path: "/v1/unwrap",
      body: { token: await wrappedAlphaRead() },
      auditScope: ALPHA,
    }),
    verify: async (_target, _cell, granted, response) => {
      if (granted) expect((await response.json()).data.value).toBe(ALPHA_VALUE);
    },
  },
  {
    route: "POST /v1/unwrap/lookup",
    bearerOnly: "the wrapping token is the credential",
    action: "wrap.lookup",
    credential: "wrapping-token",
    scoped: false,
    roles: ["admin", "operator", "runner", "auditor"],
    okStatus: 200,
    prepare: async () => ({
      method: "POST",
      path: "/v1/unwrap/lookup",
      body: { token: await wrappedAlphaRead() },
      auditScope: ALPHA,
    }),
    verify: async (_target, _cell, granted, response) => {
      if (granted)
        expect(await response.json()).toMatchObject({ kind: "secret.read", creator: expect.any(String) });
      expect(response.text).not.toContain(ALPHA_VALUE);
    },
  },
  {
    route: "POST /v1/tenants/:tenantId/break-glass",
    action: "breakglass.request",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 201,
    prepare: async (target) => ({
      method: "POST",
      path: `/v1/tenants/${target}/break-glass`,
      body: { reason: "isolation matrix", durationMinutes: 5 },
      auditScope: target,
    }),
    verify: async (target, _cell, granted, response) => {
      if (granted) expect(await response.json()).toMatchObject({ tenantId: target, status: "pending" });
    },
  },
  {
    route: "POST /v1/tenants/:tenantId/break-glass/:id/approve",
    action: "breakglass.approve",
    scoped: true,
    roles: ["admin"],
    okStatus: 200,
    prepare: async (target) => {
      const id = await breakGlassRequest(target, "matrix-requester");
      return { method: "POST", path: `/v1/tenants/${target}/break-glass/${id}/approve`, auditScope: target };
    },
    verify: async (target, _cell, granted, response) => {
      if (granted) expect(await response.json()).toMatchObject({ tenantId: target, status: "approved" });
    },
  },
  {
    // Only the requester activates: each cell's request is made as the calling token.
    route: "POST /v1/tenants/:tenantId/break-glass/:id/activate",
    bearerOnly: "only the bearer token that asked activates",
    action: "breakglass.activate",
    scoped: true,
    roles: ["admin", "operator"],
    okStatus: 201,
    prepare: async (target, cell) => {
      // Cells outside the role matrix (the unauthenticated ones) ask as the alpha operator.
      const role = ROLES.find((name) => cell.startsWith(`${name}-`)) ?? "operator";
      const id = await breakGlassRequest(target, tokens[role].id, true);
      return { method: "POST", path: `/v1/tenants/${target}/break-glass/${id}/activate`, auditScope: target };
    },
    verify: async (_target, _cell, granted, response) => {
      if (granted) expect((await response.json()).credential).toMatch(/^sbg_/);
      else expect(response.text).not.toContain("sbg_");
    },
  },
  {
    route: "POST /v1/tenants/:tenantId/break-glass/:id/revoke",
    action: "breakglass.revoke",
    scoped: true,
    roles: ["admin"],
    okStatus: 200,
    prepare: async (target) => {
      const id = await breakGlassRequest(target, "matrix-requester", true);
      return { method: "POST", path: `/v1/tenants/${target}/break-glass/${id}/revoke`, auditScope: target };
    },
    verify: async (_target, _cell, granted, response) => {
      if (granted) expect(await response.json()).toMatchObject({ status: "revoked" });
    },
  },
  {
    route: "POST /v1/bindings",
    action: "binding.create",
    scoped: false,
    roles: ["admin"],
    okStatus: 201,
    prepare: async (_target, cell) => ({
      method: "POST",
      path: "/v1/bindings",
      body: { principalArn: boundRole(`bound-${cell}`), role: "runner", tenants: [BRAVO] },
      auditScope: SYSTEM_SCOPE,
    }),
    verify: async (_target, cell, granted) => {
      const bound = (await listBindings()).filter((b) => b.principalArn === boundRole(`bound-${cell}`));
      expect(bound).toHaveLength(granted ? 1 : 0);
    },
  },
  {
    route: "GET /v1/tenants",
    action: "tenant.list",
    scoped: false,
    roles: ["admin"],
    okStatus: 200,
    prepare: async () => ({ method: "GET", path: "/v1/tenants?limit=999", auditScope: SYSTEM_SCOPE }),
    verify: async (_target, _cell, granted, response) => {
      if (!granted) return;
      const ids = (await response.json()).tenants.map((t: { tenantId: string }) => t.tenantId);
      expect(ids).toEqual([...ids].sort());
      expect(ids.length).toBeGreaterThan(1);
    },
  },
  {
    route: "GET /v1/bindings",
    action: "binding.list",
    scoped: false,
    roles: ["admin"],
    okStatus: 200,
    prepare: async () => ({ method: "GET", path: "/v1/bindings?limit=999", auditScope: SYSTEM_SCOPE }),
    verify: async (_target, _cell, granted, response) => {
      if (!granted) return;
      const arns = (await response.json()).bindings.map((b: { principalArn: string }) => b.principalArn);
      expect(arns).toContain(boundRole("runner-caller"));
    },
  },
  {
    route: "DELETE /v1/bindings/:id",
    action: "binding.delete",
    scoped: false,
    roles: ["admin"],
    okStatus: 204,
    prepare: async (_target, cell) => {
      const created = await h.call("POST", "/v1/bindings", {
        token: admin,
        body: { principalArn: boundRole(`victim-${cell}`), role: "runner", tenants: [ALPHA] },
      });
      expect(created.status).toBe(201);
      const { bindingId } = await created.json();
      return { method: "DELETE", path: `/v1/bindings/${bindingId}`, auditScope: SYSTEM_SCOPE };
    },
    verify: async (_target, cell, granted) => {
      const bound = (await listBindings()).filter((b) => b.principalArn === boundRole(`victim-${cell}`));
      expect(bound).toHaveLength(granted ? 0 : 1);
    },
  },
];

/** A break-glass request for `target` made as `requester` (an operator's principal), approved by the admin when asked. */
async function breakGlassRequest(target: string, requester: string, approved = false): Promise<string> {
  const asker = {
    requestId: "matrix-setup",
    principal: { actor: requester, role: "operator" as const, tenants: [target] },
  };
  const { id } = await h.runtime.breakGlass.request(asker, target, "matrix set-up", 5);
  if (approved) {
    const approver = {
      requestId: "matrix-setup",
      principal: { actor: "matrix-approver", role: "admin" as const, tenants: ["*"] },
    };
    await h.runtime.breakGlass.approve(approver, target, id);
  }
  return id;
}

async function wrappedAlphaRead(): Promise<string> {
  const response = await h.call("GET", `/v1/tenants/${ALPHA}/secrets/${SHARED_NAME}?wrapTtlSeconds=60`, {
    token: admin,
    headers: REASON,
  });
  expect(response.status).toBe(200);
  return (await response.json()).wrap.token;
}

async function adminSeal(path: string): Promise<void> {
  expect((await h.call("POST", path, { token: admin, body: { reason: "matrix set-up" } })).status).toBe(200);
}

async function adminUnseal(path: string): Promise<void> {
  expect((await h.call("POST", path, { token: admin, body: { reason: "matrix clean-up" } })).status).toBe(
    200,
  );
}

async function putAsAdmin(tenant: string, name: string, value: string): Promise<void> {
  const put = await h.call("PUT", `/v1/tenants/${tenant}/secrets/${name}`, { token: admin, body: { value } });
  expect(put.status).toBe(200);
}

/** An IAM role ARN in the test account, with a path, as an admin binds it. */
const boundRole = (name: string) => `arn:aws:iam::${IAM_ACCOUNT}:role/matrix/${name}`;
/** The ARN a session of that role calls with: the assumed-role ARN drops the path. */
const sessionOf = (name: string) => `arn:aws:sts::${IAM_ACCOUNT}:assumed-role/${name}/matrix-session`;

async function listBindings(): Promise<{ principalArn: string; bindingId: string }[]> {
  const response = await h.call("GET", "/v1/bindings?limit=999", { token: admin });
  expect(response.status).toBe(200);
  return (await response.json()).bindings;
}

/** Every event of a scope, read by an admin through the API, all pages. */
async function auditTrail(scope: string): Promise<AuditEvent[]> {
  const base = scope === SYSTEM_SCOPE ? "/v1/audit" : `/v1/tenants/${scope}/audit`;
  const events: AuditEvent[] = [];
  let cursor: string | undefined;
  do {
    const query = cursor === undefined ? "?limit=999" : `?limit=999&cursor=${cursor}`;
    const response = await h.call("GET", `${base}${query}`, { token: admin });
    expect(response.status).toBe(200);
    const body = await response.json();
    events.push(...body.events);
    cursor = body.nextCursor;
  } while (cursor !== undefined);
  return events;
}

async function expectDeniedOnRecord(
  call: Call,
  response: ApiResponse,
  who: { actor: string; role: string; action: AuditAction },
) {
  const requestId = response.headers.get("x-request-id");
  expect(requestId).toBeTruthy();
  const events = (await auditTrail(call.auditScope)).filter((e) => e.requestId === requestId);
  expect(events).toEqual([expect.objectContaining({ outcome: "denied", tenantId: call.auditScope, ...who })]);
}

function expectNoBravoLeak(response: ApiResponse) {
  for (const canary of [BRAVO_VALUE, BRAVO_ONLY_NAME, BRAVO_ONLY_VALUE, bravoSetupAdminId]) {
    expect(response.text).not.toContain(canary);
  }
}

async function expectError(response: ApiResponse, status: number, code: string) {
  expect(response.status).toBe(status);
  const body = await response.json();
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error).toEqual({ code, message: expect.any(String) });
}

const send = (call: Call, token?: string) =>
  h.call(call.method, call.path, {
    ...(token === undefined ? {} : { token }),
    ...(call.body === undefined ? {} : { body: call.body }),
    ...(call.headers === undefined ? {} : { headers: call.headers }),
  });

beforeAll(async () => {
  // Each denial is checked by its own request id, so repeats are not collapsed here (see audit-queries).
  h = await startHarness({ env: { AUDIT_DENIAL_WINDOW_SECONDS: "0" } });
  admin = await h.token("admin");
  const bravoAdmin = await h.runtime.tokens.issue("admin", ["*"], 3600);
  bravoSetupAdminId = bravoAdmin.id;
  for (const [tenant, token] of [
    [ALPHA, admin],
    [BRAVO, bravoAdmin.token],
  ] as const) {
    expect((await h.call("POST", "/v1/tenants", { token, body: { tenantId: tenant } })).status).toBe(201);
    const put = await h.call("PUT", `/v1/tenants/${tenant}/secrets/${SHARED_NAME}`, {
      token,
      body: { value: sharedValueOf(tenant) },
    });
    expect(put.status).toBe(200);
  }
  for (const tenant of [ALPHA, BRAVO]) {
    await putAsAdmin(tenant, ROTATING_NAME, "rotating value");
    const policy = await h.call("PUT", `/v1/tenants/${tenant}/secrets/${ROTATING_NAME}/rotation`, {
      token: admin,
      body: { rotationPeriodDays: 1 },
    });
    expect(policy.status).toBe(200);
  }
  const privatePut = await h.call("PUT", `/v1/tenants/${BRAVO}/secrets/${BRAVO_ONLY_NAME}`, {
    token: bravoAdmin.token,
    body: { value: BRAVO_ONLY_VALUE },
  });
  expect(privatePut.status).toBe(200);
  for (const role of ROLES)
    tokens[role] = await h.runtime.tokens.issue(role, role === "admin" ? ["*"] : [ALPHA], 3600);
  for (const role of ROLES) {
    const bound = await h.call("POST", "/v1/bindings", {
      token: admin,
      body: { principalArn: boundRole(`${role}-caller`), role, tenants: role === "admin" ? ["*"] : [ALPHA] },
    });
    expect(bound.status).toBe(201);
  }
  viaLambda = lambdaCaller(h.app);
});
afterAll(() => h?.close());

interface Cell {
  readonly route: RouteCase;
  readonly role: Role;
  readonly target: string;
  readonly expected: number;
  readonly title: string;
}

const cells: Cell[] = ROUTES.flatMap((route) =>
  ROLES.flatMap((role) =>
    (route.scoped ? [ALPHA, BRAVO] : [ALPHA]).map((target) => {
      const granted = route.roles.includes(role) && (role === "admin" || target === ALPHA);
      const where = !route.scoped
        ? ""
        : target === ALPHA
          ? " on its own tenant alpha"
          : " on other tenant bravo";
      const scope = role === "admin" ? "admin" : `${role} scoped to alpha`;
      return {
        route,
        role,
        target,
        expected: granted ? route.okStatus : 403,
        title: `${route.route}: ${scope}${where} gets ${granted ? route.okStatus : "403 forbidden, recorded as denied"}`,
      };
    }),
  ),
);

describe("tenant isolation: every route × every role × own and other tenant", () => {
  for (const { route, role, target, expected, title } of cells) {
    it(title, async () => {
      const cell = `${role}-${target}`;
      const call = await route.prepare(target, cell);
      const response = await send(call, tokens[role].token);
      const granted = expected !== 403;
      if (granted) expect(response.status).toBe(expected);
      else {
        await expectError(response, 403, "forbidden");
        await expectDeniedOnRecord(call, response, { actor: tokens[role].id, role, action: route.action });
      }
      if (role !== "admin") expectNoBravoLeak(response);
      await route.verify(target, cell, granted, response);
    });
  }

  it("the matrix covers every /v1 route the app serves", () => {
    const served = new Set(
      h.app.routes
        .filter((r) => r.path.startsWith("/v1") && r.method !== "ALL")
        .map((r) => `${r.method} ${r.path}`),
    );
    expect(served.size).toBeGreaterThan(0);
    expect(new Set(ROUTES.map((r) => r.route))).toEqual(served);
  });

  it("alpha's audit trail, as an alpha auditor sees it, holds only alpha's events and nothing of bravo", async () => {
    const response = await h.call("GET", `/v1/tenants/${ALPHA}/audit?limit=999`, {
      token: tokens.auditor.token,
    });
    expect(response.status).toBe(200);
    expectNoBravoLeak(response);
    const events: AuditEvent[] = (await response.json()).events;
    expect(events.length).toBeGreaterThan(0);
    for (const event of events) expect(event.tenantId).toBe(ALPHA);
  });

  it("bravo's secrets are unchanged by everything alpha-scoped tokens attempted", async () => {
    expect(await (await adminRead(BRAVO, SHARED_NAME)).json()).toMatchObject({
      version: 1,
      value: BRAVO_VALUE,
    });
    expect(await (await adminRead(BRAVO, BRAVO_ONLY_NAME)).json()).toMatchObject({
      version: 1,
      value: BRAVO_ONLY_VALUE,
    });
  });
});

type Credential = { readonly kind: string; header(): Promise<Record<string, string>> };

/** Credentials that must all be refused the same way. */
const CREDENTIALS: readonly Credential[] = [
  { kind: "no Authorization header", header: async () => ({}) },
  { kind: "a malformed bearer token", header: async () => ({ authorization: "Bearer sbx_not-a-token" }) },
  {
    kind: "a real token id with the wrong secret half",
    header: async () => {
      const real = await h.runtime.tokens.issue("admin", ["*"], 3600);
      return { authorization: `Bearer sbx_${real.id}_${"0".repeat(64)}` };
    },
  },
  {
    kind: "a revoked admin token",
    header: async () => {
      const issued = await h.runtime.tokens.issue("admin", ["*"], 3600);
      expect((await h.call("DELETE", `/v1/tokens/${issued.id}`, { token: admin })).status).toBe(204);
      return { authorization: `Bearer ${issued.token}` };
    },
  },
  {
    kind: "an expired admin token",
    // Issued already expired rather than waiting for expiry, so the test does not depend on timing.
    header: async () => ({
      authorization: `Bearer ${(await h.runtime.tokens.issue("admin", ["*"], -60)).token}`,
    }),
  },
];

const wrappingTokenRoutes = ROUTES.filter((route) => route.credential === "wrapping-token");
const unauthenticatedCells = ROUTES.filter((route) => route.credential === undefined).flatMap((route) =>
  (route.scoped ? [ALPHA, BRAVO] : [ALPHA]).flatMap((target) =>
    CREDENTIALS.map((credential, index) => ({
      route,
      target,
      credential,
      index,
      title: `${route.route}${route.scoped ? ` on ${target}` : ""} with ${credential.kind} gets 401 unauthenticated, recorded as denied`,
    })),
  ),
);

describe("the routes whose credential is a wrapping token", () => {
  for (const route of wrappingTokenRoutes) {
    it(`${route.route} answers without any bearer token, and refuses an unknown wrapping token with 404, recorded as denied`, async () => {
      const call = await route.prepare(ALPHA, "no-bearer");
      const served = await h.call(call.method, call.path, { body: call.body });
      expect(served.status).toBe(route.okStatus);
      await route.verify(ALPHA, "no-bearer", true, served);
      const unknown = await h.call(call.method, call.path, {
        body: { token: `sbw_${"a".repeat(26)}_${"0".repeat(64)}` },
      });
      await expectError(unknown, 404, "not_found");
      const requestId = unknown.headers.get("x-request-id");
      const recorded = (await auditTrail(SYSTEM_SCOPE)).filter((e) => e.requestId === requestId);
      expect(recorded).toEqual([
        expect.objectContaining({ outcome: "denied", role: "anonymous", action: route.action }),
      ]);
    });
  }
});

describe("every /v1 route refuses requests without a valid token", () => {
  for (const { route, target, credential, index, title } of unauthenticatedCells) {
    it(title, async () => {
      const cell = `unauth${index}-${target}`;
      const call = await route.prepare(target, cell);
      const response = await h.call(call.method, call.path, {
        ...(call.body === undefined ? {} : { body: call.body }),
        headers: { ...call.headers, ...(await credential.header()) },
      });
      await expectError(response, 401, "unauthenticated");
      expectNoBravoLeak(response);
      // Without a principal the body is never read, so a refused tenant creation is a system event.
      const scope = route.route === "POST /v1/tenants" ? SYSTEM_SCOPE : call.auditScope;
      const requestId = response.headers.get("x-request-id");
      const recorded = (await auditTrail(scope)).filter((e) => e.requestId === requestId);
      expect(recorded).toEqual([
        expect.objectContaining({
          outcome: "denied",
          role: "anonymous",
          action: route.action,
          tenantId: scope,
        }),
      ]);
      await route.verify(target, cell, false, response);
    });
  }
});

/** A call on the IAM route set, as API Gateway delivers it after verifying `userArn`'s signature. */
const sendIam = (call: Call, userArn: string, headers: Record<string, string> = {}) => {
  const [path = "", query = ""] = call.path.split("?");
  return viaLambda(
    iamApiEvent(call.method, `/iam${path}`, userArn, {
      query,
      headers: {
        ...(call.body === undefined ? {} : { "content-type": "application/json" }),
        ...call.headers,
        ...headers,
      },
      ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }),
    }),
  );
};

describe("tenant isolation for IAM callers: every route on /iam/v1 × every bound role × own and other tenant", () => {
  for (const { route, role, target, expected, title } of cells.filter(
    (c) => c.route.bearerOnly === undefined,
  )) {
    it(title, async () => {
      const cell = `iam-${role}-${target}`;
      const call = await route.prepare(target, cell);
      const caller = sessionOf(`${role}-caller`);
      const response = await sendIam(call, caller);
      const granted = expected !== 403;
      if (granted) expect(response.status).toBe(expected);
      else {
        await expectError(response, 403, "forbidden");
        await expectDeniedOnRecord(call, response, { actor: caller, role, action: route.action });
      }
      if (role !== "admin") expectNoBravoLeak(response);
      await route.verify(target, cell, granted, response);
    });
  }
});

describe("every /iam/v1 route refuses callers no binding names, and requests without API Gateway's IAM context", () => {
  for (const route of ROUTES.filter((r) => r.bearerOnly === undefined)) {
    it(`${route.route}: an unbound IAM principal gets 403, recorded with its ARN`, async () => {
      const cell = `iam-unbound-${route.action.replaceAll(".", "-")}`;
      const call = await route.prepare(ALPHA, cell);
      const stranger = sessionOf("never-bound");
      const response = await sendIam(call, stranger);
      await expectError(response, 403, "forbidden");
      const scope = route.route === "POST /v1/tenants" ? SYSTEM_SCOPE : call.auditScope;
      const requestId = response.headers.get("x-request-id");
      const recorded = (await auditTrail(scope)).filter((e) => e.requestId === requestId);
      expect(recorded).toEqual([
        expect.objectContaining({ outcome: "denied", actor: stranger, role: "aws", action: route.action }),
      ]);
      await route.verify(ALPHA, cell, false, response);
    });

    it(`${route.route}: on /iam/v1 without IAM context, even with an admin bearer token, gets 401`, async () => {
      const cell = `iam-noctx-${route.action.replaceAll(".", "-")}`;
      const call = await route.prepare(ALPHA, cell);
      const [path = "", query = ""] = call.path.split("?");
      const response = await viaLambda(
        httpApiEvent(call.method, `/iam${path}`, {
          query,
          headers: {
            authorization: `Bearer ${admin}`,
            ...(call.body === undefined ? {} : { "content-type": "application/json" }),
            ...call.headers,
          },
          ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }),
        }),
      );
      await expectError(response, 401, "unauthenticated");
      await route.verify(ALPHA, cell, false, response);
    });
  }

  it("the local app (no Lambda event) never takes an IAM identity, whatever the headers claim", async () => {
    const response = await h.call("GET", `/iam/v1/tenants/${ALPHA}/secrets/${SHARED_NAME}`, {
      headers: {
        ...REASON,
        "x-amzn-iam-user-arn": sessionOf("admin-caller"),
        "x-amzn-request-context": JSON.stringify({
          authorizer: { iam: { userArn: sessionOf("admin-caller") } },
        }),
      },
    });
    await expectError(response, 401, "unauthenticated");
  });

  it("a bearer route ignores an IAM context in the event: only the token counts there", async () => {
    const event = iamApiEvent(
      "GET",
      `/v1/tenants/${ALPHA}/secrets/${SHARED_NAME}`,
      sessionOf("admin-caller"),
      {
        headers: REASON,
      },
    );
    await expectError(await viaLambda(event), 401, "unauthenticated");
  });
});
