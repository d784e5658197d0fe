import { writeFileSync } from "node:fs";
import { type AuditFilter, StrongboxApiError } from "../../client/src/index.ts";
import type { ChainHead } from "../../shared/domain/audit-chain.ts";
import { ProblemFound, UsageError } from "../errors.ts";
import { readSecretInput } from "../input.ts";
import { type Output, table } from "../output.ts";
import { Progress, pause } from "../progress.ts";
import type { Remote } from "../remote.ts";

const json = (out: Output, value: unknown, human: string) =>
  out.write(out.json ? JSON.stringify(value, null, 2) : human);

export async function createTenant(remote: Remote, out: Output, tenantId: string) {
  const tenant = await remote.operator.createTenant(tenantId);
  json(out, tenant, `created tenant ${tenant.tenantId} with DEK v${tenant.currentDekVersion}`);
}

export async function listTenants(remote: Remote, out: Output) {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await remote.operator.listTenants(
      cursor === undefined ? { limit: 999 } : { limit: 999, cursor },
    );
    ids.push(...page.tenants.map((t) => t.tenantId));
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  json(out, { tenants: ids }, ids.length === 0 ? "(no tenants)" : ids.join("\n"));
}

/** Needs the tenant id twice, on the command line and in --confirm, as the API needs it in the body. */
export async function deleteTenant(
  remote: Remote,
  out: Output,
  tenantId: string,
  confirm: string | undefined,
) {
  if (confirm !== tenantId) {
    throw new UsageError(
      `deleting a tenant destroys its keys for good: repeat its id, --confirm ${tenantId}`,
    );
  }
  for (let attempt = 0; ; attempt += 1) {
    const answer = await remote.operator.deleteTenant(tenantId);
    if ("certificate" in answer) {
      json(
        out,
        answer,
        `${tenantId}: DEKs destroyed and items removed; certificate ${JSON.stringify(answer.certificate)}`,
      );
      return;
    }
    // 202: the sweep goes on; each call resumes it from its checkpoint.
    if (attempt >= 100)
      throw new ProblemFound(`${tenantId}: the deletion sweep is not finished`, "run the same command again");
    await pause(500);
  }
}

/** The API checks each certificate's MAC itself; a tenant without one is a problem found (exit 1). */
export async function certificatesRemote(remote: Remote, out: Output, tenants: readonly string[]) {
  const checks = [];
  for (const tenantId of tenants) {
    try {
      checks.push({ tenantId, ...(await remote.operator.deletionCertificate(tenantId)) });
    } catch (error) {
      // One tenant without a certificate must not hide what the others' say.
      if (!(error instanceof StrongboxApiError && error.code === "not_found")) throw error;
      checks.push({ tenantId, certificate: undefined, verified: false });
    }
  }
  json(
    out,
    { certificates: checks },
    checks
      .map((c) =>
        c.certificate === undefined
          ? `${c.tenantId}: no deletion certificate`
          : `${c.tenantId}: ${c.verified ? "certificate verifies" : "certificate does NOT verify"}`,
      )
      .join("\n"),
  );
  return checks.every((c) => c.verified);
}

export async function showTenant(remote: Remote, out: Output, tenantId: string) {
  const tenant = await remote.operator.getTenant(tenantId);
  json(
    out,
    tenant,
    [
      `tenant ${tenant.tenantId}, created ${tenant.createdAt}, current DEK v${tenant.currentDekVersion}`,
      table(tenant.dataKeys as unknown as Record<string, unknown>[], ["version", "kekId", "createdAt"]),
    ].join("\n"),
  );
}

const DURATION = /^([1-9][0-9]{0,5})([smhd])$/;
const SECONDS = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/** `90s`, `5m`, `12h` or `30d`, as seconds. */
export function durationSeconds(raw: string, option: string): number {
  const match = DURATION.exec(raw);
  if (match === null) throw new UsageError(`${option} is a duration such as 90s, 5m, 12h or 30d`);
  return Number(match[1]) * SECONDS[match[2] as keyof typeof SECONDS];
}

export async function issueToken(
  remote: Remote,
  out: Output,
  options: { role: string; tenants: string; ttl: string; wrap?: string },
) {
  const roles = ["admin", "operator", "runner", "auditor"] as const;
  if (!(roles as readonly string[]).includes(options.role))
    throw new UsageError(`--role is one of ${roles.join(", ")}`);
  const tenants = options.tenants
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t !== "");
  const created = await remote.operator.createToken({
    role: options.role as (typeof roles)[number],
    tenants,
    ttlSeconds: durationSeconds(options.ttl, "--ttl"),
    ...(options.wrap === undefined ? {} : { wrapTtlSeconds: durationSeconds(options.wrap, "--wrap") }),
  });
  // The token is the payload: stdout carries it alone, so it can go straight into a secret store.
  if ("wrap" in created) {
    // Seed 002 §3.1: the recipient unwraps it once (strongbox unwrap); a second unwrap is a 410.
    out.note(`wrapped: single-use ${created.wrap.id}, expires ${created.wrap.expiresAt}`);
    out.write(out.json ? JSON.stringify(created) : created.wrap.token);
    return;
  }
  out.note(`token ${created.id} expires ${created.expiresAt}; it is shown once`);
  out.write(out.json ? JSON.stringify(created) : created.token);
}

/** Unwraps a wrapping token read from stdin, once; the payload goes to stdout. */
export async function unwrap(remote: Remote, out: Output) {
  const token = (await readSecretInput("the wrapping token")).trim();
  if (token === "") throw new UsageError("pipe the wrapping token (sbw_…) on stdin");
  const payload = await remote.operator.unwrap(token);
  const data = payload.data as Record<string, unknown>;
  const secret =
    typeof data.value === "string" ? data.value : typeof data.token === "string" ? data.token : undefined;
  out.write(out.json || secret === undefined ? JSON.stringify(payload) : secret);
}

export async function revokeToken(remote: Remote, out: Output, id: string) {
  await remote.operator.revokeToken(id);
  json(out, { revoked: id }, `revoked token ${id}`);
}

export async function rotateSecret(remote: Remote, out: Output, tenant: string, name: string) {
  const result = await remote.client.rotateSecret(tenant, name);
  json(out, result, `${tenant}/${name}: ${JSON.stringify(result)}`);
}

/** Creates the next DEK and follows the sweep by its live counts until every ciphertext is on it. */
export async function rotateDek(
  remote: Remote,
  out: Output,
  tenant: string,
  options: { wait: boolean; run?: boolean; timeout: string },
) {
  const rotated = await remote.client.rotateDek(tenant);
  const target = rotated.dekVersion;
  out.note(`${tenant}: DEK v${target} created; the sweep re-encrypts every ciphertext onto it`);
  if (!options.wait) {
    json(out, rotated, `${tenant}: DEK v${target}`);
    return;
  }
  const deadline = Date.now() + durationSeconds(options.timeout, "--timeout") * 1000;
  const progress = new Progress();
  try {
    for (;;) {
      const status = await remote.operator.dekRotation(tenant);
      const counts = status.itemsByDekVersion as Record<string, number>;
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      const done = counts[String(target)] ?? 0;
      progress.update(`${tenant} DEK v${target}`, done, Math.max(total, 1), "ciphertexts");
      // Re-encryption is what the operator waits for; retiring the old DEK follows on its own once
      // the retire grace period has passed (docs/rotation.md), so it is reported, not waited for.
      const sweeping = status.sweep?.targetDekVersion === target && status.sweep.phase === "reencrypt";
      if (done === total && !sweeping) {
        progress.stop();
        const retire =
          status.sweep?.phase === "done" ? "" : "; older DEKs are retired after the grace period";
        json(out, status, `${tenant}: every ciphertext (${total}) is on DEK v${target}${retire}`);
        return;
      }
      if (Date.now() > deadline) {
        throw new ProblemFound(
          `${tenant}: the sweep has not finished after ${options.timeout} (${done} of ${total} ciphertexts on v${target})`,
          "it continues on the service's schedule; follow it with strongbox rotate status, or pass --run with an admin token",
        );
      }
      // An admin may drive the scheduled work itself rather than wait for its next tick.
      if (options.run === true) await remote.operator.runRotation();
      else await pause(1000);
    }
  } finally {
    progress.stop();
  }
}

export async function kekStatus(remote: Remote, out: Output) {
  const report = await remote.operator.kekReport();
  json(
    out,
    report,
    [
      `active KEK: ${report.activeKekId}`,
      table(report.keks as unknown as Record<string, unknown>[], [
        "kekId",
        "configured",
        "dataKeys",
        "mayBeRemoved",
        "status",
      ]),
      report.rewrap === undefined
        ? "no re-wrap recorded"
        : `re-wrap: ${report.rewrap.phase}, pass ${report.rewrap.pass}`,
    ].join("\n"),
  );
  if (report.keks.some((k) => k.configured === "no" && k.dataKeys > 0)) {
    throw new ProblemFound(
      "DEKs depend on a KEK the service does not hold",
      "run strongbox doctor in the service's environment",
    );
  }
}

/** Starts (or continues) the re-wrap, with a bar per KEK fingerprint of the DEKs still on it. */
export async function kekRewrap(remote: Remote, out: Output, options: { wait: boolean; timeout: string }) {
  const started = await remote.operator.requestKekRewrap();
  out.note(`re-wrap ${started.started ? "started" : "continues"} onto ${started.state.targetKekId}`);
  if (!options.wait) {
    json(out, started, `re-wrap ${started.state.phase}`);
    return;
  }
  const deadline = Date.now() + durationSeconds(options.timeout, "--timeout") * 1000;
  const progress = new Progress();
  try {
    for (;;) {
      const report = await remote.operator.kekReport();
      const total = report.keks.reduce((n, k) => n + k.dataKeys, 0);
      for (const kek of report.keks) progress.update(kek.kekId, kek.dataKeys, Math.max(total, 1), "DEKs");
      const rewrap = report.rewrap;
      if (rewrap?.phase === "done") {
        progress.stop();
        json(out, report, `re-wrap done: ${rewrap.rewrapped} DEKs re-wrapped onto ${rewrap.targetKekId}`);
        return;
      }
      const failed = Object.entries(rewrap?.failedByKek ?? {});
      if (failed.length > 0) {
        throw new ProblemFound(
          `the re-wrap could not re-wrap ${failed.map(([k, n]) => `${n} DEKs of ${k}`).join(", ")}`,
          "configure those KEKs as previous ones (strongbox doctor names them), then run strongbox kek rewrap again",
        );
      }
      if (Date.now() > deadline) {
        throw new ProblemFound(
          `the re-wrap has not finished after ${options.timeout}`,
          "it continues on its own; check strongbox kek status",
        );
      }
      await pause(500);
    }
  } finally {
    progress.stop();
  }
}

export async function auditQuery(
  remote: Remote,
  out: Output,
  scope: string,
  filter: AuditFilter,
  limit?: string,
) {
  if (limit !== undefined && !/^[1-9][0-9]{0,2}$/.test(limit)) throw new UsageError("--limit is 1 to 999");
  const page = await remote.operator.auditPage(
    scope,
    filter,
    limit === undefined ? {} : { limit: Number(limit) },
  );
  const rows = page.events as unknown as Record<string, unknown>[];
  json(out, page, table(rows, ["sequence", "time", "action", "outcome", "actor", "secretName", "reason"]));
}

/** Every page of an export into one JSON-lines file, each page's trailer checked and kept out of it. */
export async function auditExport(remote: Remote, out: Output, scope: string, file: string) {
  const lines: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  for (;;) {
    const text = await remote.operator.auditExport(scope, cursor);
    pages += 1;
    const pageLines = text.split("\n").filter((line) => line !== "");
    const trailer = JSON.parse(pageLines.pop() ?? "{}") as {
      end?: boolean;
      records?: number;
      nextCursor?: string;
    };
    if (trailer.end !== true || trailer.records !== pageLines.length) {
      throw new ProblemFound(
        `export page ${pages} of ${scope} was cut short: no trailer, or a trailer counting other records`,
        "run the export again; a proxy or a dropped connection truncated it",
      );
    }
    lines.push(...pageLines);
    if (trailer.nextCursor === undefined) break;
    cursor = trailer.nextCursor;
  }
  writeFileSync(file, lines.length === 0 ? "" : `${lines.join("\n")}\n`, { mode: 0o600 });
  json(
    out,
    { scope, records: lines.length, pages, file },
    `${scope}: ${lines.length} records in ${pages} pages, trailers checked, written to ${file}`,
  );
}

export async function auditVerifyRemote(
  remote: Remote,
  out: Output,
  requested: readonly string[],
  expected: ReadonlyMap<string, ChainHead>,
): Promise<boolean> {
  const scopes = [...new Set([...requested, ...expected.keys()])];
  if (scopes.length === 0) throw new UsageError("name the scopes to verify (tenant ids or _system)");
  const results = [];
  for (const scope of scopes) {
    const head = expected.get(scope);
    const held = head === undefined ? {} : { expectSequence: String(head.sequence), expectHash: head.hash };
    // Each call stops within API Gateway's limit; the cursor carries the walk on from there. Every
    // call walks at least one record, so a cursor that does not move the walk on is a fault.
    let result = await remote.operator.auditVerify(scope, held);
    while (result.nextCursor !== undefined && result.intact) {
      const before = result;
      result = await remote.operator.auditVerify(scope, { ...held, cursor: before.nextCursor });
      if (
        result.intact &&
        result.nextCursor !== undefined &&
        result.verifiedThrough <= before.verifiedThrough
      ) {
        throw new ProblemFound(
          `${scope}: the verification stopped moving at sequence ${result.verifiedThrough}`,
          "ask again later; if it persists, verify offline (strongbox audit verify without --url)",
        );
      }
    }
    results.push(result);
  }
  json(out, { chains: results }, results.map((r) => r.summary).join("\n"));
  return results.every((r) => r.intact);
}
