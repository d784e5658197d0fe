import type { Principal, Role } from "./types.ts";

/** What a role may be granted. One permission can cover several operations (secret:rotate covers four). */
export type Permission =
  | "tenant:create"
  | "tenant:read"
  | "secret:write"
  | "secret:read"
  | "secret:list"
  | "secret:delete"
  | "token:manage"
  | "audit:read"
  | "dek:rotate"
  | "kek:manage"
  | "rotation:read"
  | "rotation:run"
  | "secret:rotate"
  | "health:read"
  | "tenant:delete"
  | "tenant:seal"
  | "tenant:unseal"
  | "system:seal"
  | "token:read"
  | "token:self"
  | "breakglass:request"
  | "breakglass:approve"
  | "binding:manage"
  | "tenant:list";

interface OperationSpec {
  /**
   * What a caller needs to be granted, or null for what no caller can ask for: what the service records
   * of its own accord (a sweep, a CloudTrail call, a denial).
   */
  readonly permission: Permission | null;
  /**
   * Which audit scope the operation acts in: a tenant, the system scope (`_system`, for what belongs
   * to no tenant), or either (the audit trail has both). The caller's token must reach that scope;
   * admins reach every one, and no other token can name `_system`. `self` is the caller's own token:
   * every token reaches it, and its records go to `_system` beside the token's issuance.
   */
  readonly scope: "tenant" | "system" | "either" | "self";
  /** Every record of the operation is marked for an operator to look at. */
  readonly severity?: "high";
  /**
   * Answered for a sealed tenant too (the kill switch, audit reads, the service's own records);
   * every other tenant operation is refused with 423 while its tenant or everything is sealed.
   */
  readonly whileSealed?: true;
}

/**
 * Every operation that exists, once. The route names its operation from here, the gate looks up the
 * permission here, and the audit record carries the same name as its action, so the three can never
 * disagree. The order is the order audit filters list them in.
 */
export const OPERATIONS = {
  "tenant.create": { permission: "tenant:create", scope: "tenant" },
  "tenant.read": { permission: "tenant:read", scope: "tenant" },
  "secret.read": { permission: "secret:read", scope: "tenant" },
  "secret.write": { permission: "secret:write", scope: "tenant" },
  "secret.delete": { permission: "secret:delete", scope: "tenant" },
  "secret.list": { permission: "secret:list", scope: "tenant" },
  "token.create": { permission: "token:manage", scope: "system" },
  "token.revoke": { permission: "token:manage", scope: "system" },
  "audit.read": { permission: "audit:read", scope: "either", whileSealed: true },
  "request.denied": { permission: null, scope: "either", whileSealed: true },
  "audit.verify": { permission: "audit:read", scope: "either", whileSealed: true },
  "audit.export": { permission: "audit:read", scope: "either", whileSealed: true },
  "audit.head": { permission: "audit:read", scope: "tenant", whileSealed: true },
  "kms.call": { permission: null, scope: "either", whileSealed: true },
  "tenant.rotate-dek": { permission: "dek:rotate", scope: "tenant" },
  "tenant.reencrypt": { permission: null, scope: "tenant" },
  // The KEK re-wrap's attestation that a chain verified under the keys it held before one is removed.
  "audit.reanchor": { permission: null, scope: "either", whileSealed: true },
  "kek.rewrap": { permission: "kek:manage", scope: "system" },
  "kek.read": { permission: "kek:manage", scope: "system" },
  "rotation.read": { permission: "rotation:read", scope: "tenant" },
  "rotation.run": { permission: "rotation:run", scope: "system" },
  "secret.rotation-policy": { permission: "secret:rotate", scope: "tenant" },
  "secret.rotate": { permission: "secret:rotate", scope: "tenant" },
  "secret.promote": { permission: "secret:rotate", scope: "tenant" },
  "secret.rollback": { permission: "secret:rotate", scope: "tenant" },
  "health.read": { permission: "health:read", scope: "system" },
  // Version lifecycle (issue 12 item 5): metadata listing, destruction, undelete within the window, purge.
  "secret.versions": { permission: "secret:list", scope: "tenant" },
  "secret.destroy-version": { permission: "secret:delete", scope: "tenant" },
  "secret.undelete": { permission: "secret:delete", scope: "tenant" },
  "secret.purge": { permission: "secret:delete", scope: "tenant" },
  // Tenant deletion with crypto-shredding (issue 12 item 6), and its certificate.
  // Deletion is stronger than a seal, so a sealed tenant can still be deleted; its certificate is an audit read.
  "tenant.delete": { permission: "tenant:delete", scope: "tenant", whileSealed: true },
  "tenant.deletion-certificate": { permission: "audit:read", scope: "tenant", whileSealed: true },
  "tenant.seal": { permission: "tenant:seal", scope: "tenant", severity: "high", whileSealed: true },
  "tenant.unseal": { permission: "tenant:unseal", scope: "tenant", severity: "high", whileSealed: true },
  "system.seal": { permission: "system:seal", scope: "system", severity: "high", whileSealed: true },
  "system.unseal": { permission: "system:seal", scope: "system", severity: "high", whileSealed: true },
  "token.list": { permission: "token:read", scope: "system" },
  "token.self": { permission: "token:self", scope: "self" },
  // Authorised by the wrapping token itself, not by a role: whoever holds it may unwrap it once.
  "wrap.unwrap": { permission: null, scope: "either" },
  "wrap.lookup": { permission: null, scope: "either" },
  "breakglass.request": { permission: "breakglass:request", scope: "tenant", severity: "high" },
  "breakglass.approve": { permission: "breakglass:approve", scope: "tenant", severity: "high" },
  "breakglass.activate": { permission: "breakglass:request", scope: "tenant", severity: "high" },
  "breakglass.revoke": { permission: "breakglass:approve", scope: "tenant", severity: "high" },
  "binding.create": { permission: "binding:manage", scope: "system" },
  "binding.list": { permission: "binding:manage", scope: "system" },
  "binding.delete": { permission: "binding:manage", scope: "system" },
  // Every tenant's id, so admin only: a tenant-scoped token must not learn which other tenants exist.
  "tenant.list": { permission: "tenant:list", scope: "system" },
} as const satisfies Record<string, OperationSpec>;

/** An operation's name, which is also the action of its audit records. */
export type AuditAction = keyof typeof OPERATIONS;
export const AUDIT_ACTIONS = Object.keys(OPERATIONS) as [AuditAction, ...AuditAction[]];

/** The operations a caller can ask for, as opposed to what the service records on its own. */
export type Operation = {
  [A in AuditAction]: (typeof OPERATIONS)[A]["permission"] extends null ? never : A;
}[AuditAction];

const GRANTS: Record<Role, ReadonlySet<Permission>> = {
  admin: new Set<Permission>([
    "tenant:create",
    "tenant:read",
    "secret:write",
    "secret:read",
    "secret:list",
    "secret:delete",
    "token:manage",
    "audit:read",
    "dek:rotate",
    "kek:manage",
    "rotation:read",
    "rotation:run",
    "secret:rotate",
    "health:read",
    "tenant:delete",
    "tenant:seal",
    "tenant:unseal",
    "system:seal",
    "token:read",
    "token:self",
    "breakglass:request",
    "breakglass:approve",
    "binding:manage",
    "tenant:list",
  ]),
  operator: new Set<Permission>([
    "tenant:read",
    "secret:write",
    "secret:read",
    "secret:list",
    "secret:delete",
    "dek:rotate",
    "rotation:read",
    "secret:rotate",
    "tenant:seal",
    "token:self",
    "breakglass:request",
  ]),
  runner: new Set<Permission>(["secret:read", "secret:list", "token:self"]),
  auditor: new Set<Permission>(["audit:read", "token:self"]),
};

/**
 * The role grants the operation's permission, and the token reaches the scope it acts in. Fails closed
 * on anything the types rule out but a caller could still pass: no scope, an unknown role or operation.
 */
export function isAllowed(principal: Principal, operation: Operation, scope: string): boolean {
  if (typeof scope !== "string" || scope === "") return false;
  const permission = OPERATIONS[operation]?.permission;
  if (permission == null || GRANTS[principal.role]?.has(permission) !== true) return false;
  if ((OPERATIONS[operation] as OperationSpec).scope === "self") return true;
  // A break-glass credential is an admin on its one tenant only, never on `_system`.
  if (principal.role === "admin" && principal.breakGlass === undefined) return true;
  return principal.tenants.includes(scope);
}

/** The severity every record of the operation carries, if any. */
export const severityOf = (action: AuditAction): "high" | undefined =>
  (OPERATIONS[action] as OperationSpec).severity;

/** Whether the operation is answered while its tenant, or everything, is sealed. */
export const answersWhileSealed = (action: AuditAction): boolean =>
  (OPERATIONS[action] as OperationSpec).whileSealed === true;

/** The roles granted an operation's permission, for the API's documentation. */
export function rolesAllowed(operation: Operation): Role[] {
  const permission = OPERATIONS[operation].permission;
  return (Object.keys(GRANTS) as Role[]).filter((role) => GRANTS[role].has(permission));
}
