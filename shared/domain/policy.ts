import type { Principal, Role } from "./types.ts";

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
  | "secret:rotate";

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
  ]),
  runner: new Set<Permission>(["secret:read", "secret:list"]),
  auditor: new Set<Permission>(["audit:read"]),
};

/** Role grants the permission, and (for tenant-scoped permissions) the token is scoped to the tenant. */
export function isAllowed(principal: Principal, permission: Permission, tenantId?: string): boolean {
  if (!GRANTS[principal.role].has(permission)) return false;
  if (principal.role === "admin" || tenantId === undefined) return true;
  return principal.tenants.includes(tenantId);
}
