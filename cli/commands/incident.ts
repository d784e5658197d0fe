import type { TokenFilter } from "../../client/src/index.ts";
import { UsageError } from "../errors.ts";
import { type Output, table } from "../output.ts";
import type { Remote } from "../remote.ts";

// Seed 002's incident procedures: the kill switch (§7.1), the access review (§10.2) and
// break-glass (§4.2).

const json = (out: Output, value: unknown, human: string) =>
  out.write(out.json ? JSON.stringify(value, null, 2) : human);

/** The seal's scope: one tenant, or `*` with --all; never both, never neither. */
function scopeOf(tenant: string | undefined, all: boolean | undefined): string {
  if (all === true && tenant !== undefined) throw new UsageError("give a tenant or --all, not both");
  if (all === true) return "*";
  if (tenant === undefined) throw new UsageError("name the tenant to seal, or --all for every tenant");
  return tenant;
}

function reasonOf(reason: string | undefined, command: string): string {
  if (reason === undefined || reason.trim() === "") {
    throw new UsageError(`${command} needs --reason: it goes into the audit trail`);
  }
  return reason;
}

export async function seal(
  remote: Remote,
  out: Output,
  tenant: string | undefined,
  options: { all?: boolean; reason?: string },
) {
  const scope = scopeOf(tenant, options.all);
  const view = await remote.operator.seal(scope, reasonOf(options.reason, "seal"));
  json(out, view, `${scope === "*" ? "every tenant" : scope}: sealed; every call on it is now 423`);
}

/** Exit 0 either way: a 202 (waiting for a second admin) is the stage's rule working, not a problem. */
export async function unseal(
  remote: Remote,
  out: Output,
  tenant: string | undefined,
  options: { all?: boolean; reason?: string },
) {
  const scope = scopeOf(tenant, options.all);
  const { view, done } = await remote.operator.unseal(scope, reasonOf(options.reason, "unseal"));
  const name = scope === "*" ? "every tenant" : scope;
  json(
    out,
    { ...view, done },
    done
      ? `${name}: unsealed`
      : `${name}: still sealed; the unseal waits for a second admin to run the same command`,
  );
}

const STATUSES = ["active", "revoked", "expired", "failed_integrity"] as const;
const ROLES = ["admin", "operator", "runner", "auditor"] as const;

/** Every page of the access review, filtered; metadata only, never a hash or a token. */
export async function listTokens(
  remote: Remote,
  out: Output,
  options: { role?: string; tenant?: string; status?: string; expiresBefore?: string },
) {
  if (options.role !== undefined && !(ROLES as readonly string[]).includes(options.role))
    throw new UsageError(`--role is one of ${ROLES.join(", ")}`);
  if (options.status !== undefined && !(STATUSES as readonly string[]).includes(options.status))
    throw new UsageError(`--status is one of ${STATUSES.join(", ")}`);
  const filter = Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  ) as TokenFilter;
  const tokens = [];
  let cursor: string | undefined;
  do {
    const page = await remote.operator.listTokens(
      filter,
      cursor === undefined ? { limit: 100 } : { limit: 100, cursor },
    );
    tokens.push(...page.tokens);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  json(
    out,
    { tokens },
    table(
      tokens.map((t) => ({ ...t, tenants: t.tenants?.join(",") })),
      ["id", "status", "role", "tenants", "createdAt", "expiresAt", "revokedAt"],
    ),
  );
}

const MINUTES = /^([1-9][0-9]?)m?$/;

export async function requestBreakGlass(
  remote: Remote,
  out: Output,
  tenant: string,
  options: { reason?: string; minutes: string },
) {
  const match = MINUTES.exec(options.minutes);
  const minutes = match === null ? Number.NaN : Number(match[1]);
  if (!(minutes >= 1 && minutes <= 60)) throw new UsageError("--minutes is 1 to 60");
  const request = await remote.operator.requestBreakGlass(
    tenant,
    reasonOf(options.reason, "break-glass request"),
    minutes,
  );
  json(
    out,
    request,
    `break-glass ${request.id} on ${tenant}: pending; another admin runs strongbox break-glass approve ${tenant} ${request.id}`,
  );
}

export async function approveBreakGlass(remote: Remote, out: Output, tenant: string, id: string) {
  const request = await remote.operator.approveBreakGlass(tenant, id);
  json(
    out,
    request,
    `break-glass ${id} on ${tenant}: approved until ${request.expiresAt}; the requester runs strongbox break-glass activate ${tenant} ${id}`,
  );
}

/** The credential is the payload: stdout carries it alone, as `tokens issue` does. */
export async function activateBreakGlass(remote: Remote, out: Output, tenant: string, id: string) {
  const credential = await remote.operator.activateBreakGlass(tenant, id);
  out.note(`break-glass ${id}: admin on ${tenant} until ${credential.expiresAt}; it is shown once`);
  out.write(out.json ? JSON.stringify(credential) : credential.credential);
}

export async function revokeBreakGlass(remote: Remote, out: Output, tenant: string, id: string) {
  const request = await remote.operator.revokeBreakGlass(tenant, id);
  json(out, request, `break-glass ${id} on ${tenant}: revoked; its credential no longer works`);
}
