import { UsageError } from "../errors.ts";
import { readSecretInput } from "../input.ts";
import { type Output, table } from "../output.ts";
import type { Remote } from "../remote.ts";

const STAGES = ["current", "pending", "previous"] as const;
type Stage = (typeof STAGES)[number];

const versionOf = (raw: string | undefined, option: string): number | undefined => {
  if (raw === undefined) return undefined;
  if (!/^[1-9][0-9]{0,8}$/.test(raw)) throw new UsageError(`${option} must be a positive whole number`);
  return Number(raw);
};

const stageOf = (raw: string | undefined): Stage | undefined => {
  if (raw === undefined) return undefined;
  if (!(STAGES as readonly string[]).includes(raw))
    throw new UsageError(`--stage is one of ${STAGES.join(", ")}`);
  return raw as Stage;
};

/** A value given as an argument is refused before anything is sent: argv is visible to `ps` and history. */
export function refuseValueArgument(value: string | undefined): void {
  if (value !== undefined) {
    throw new UsageError(
      "values are never taken as arguments (ps and shell history keep them): pipe it on stdin or give --from-file",
    );
  }
}

export async function putSecret(
  remote: Remote,
  out: Output,
  tenant: string,
  name: string,
  options: { fromFile?: string; stage?: string },
): Promise<void> {
  const stage = options.stage === undefined ? undefined : options.stage;
  if (stage !== undefined && stage !== "pending")
    throw new UsageError("--stage takes only pending on a write");
  const raw = await readSecretInput("the value", options.fromFile);
  // One trailing newline is what `echo` and editors add; anything else is the value as given.
  const value = raw.endsWith("\r\n") ? raw.slice(0, -2) : raw.endsWith("\n") ? raw.slice(0, -1) : raw;
  if (value === "") throw new UsageError("the value is empty");
  const written = await remote.client.putSecret(tenant, name, {
    value,
    ...(stage === undefined ? {} : { stage }),
  });
  out.write(out.json ? JSON.stringify(written) : `${tenant}/${name}: wrote version ${written.version}`);
}

export async function getSecret(
  remote: Remote,
  out: Output,
  tenant: string,
  name: string,
  options: { reason?: string; version?: string; stage?: string },
): Promise<void> {
  if (options.reason === undefined || options.reason.trim() === "") {
    throw new UsageError("a read needs --reason: it goes into the audit trail");
  }
  const version = versionOf(options.version, "--version");
  const stage = stageOf(options.stage);
  const read = await remote.client.getSecret(tenant, name, {
    reason: options.reason,
    ...(version === undefined ? {} : { version }),
    ...(stage === undefined ? {} : { stage }),
  });
  // Only the value, so `$(strongbox secrets get …)` is the value and nothing else.
  out.write(out.json ? JSON.stringify(read) : read.value);
}

export async function listSecrets(remote: Remote, out: Output, tenant: string): Promise<void> {
  const rows: Record<string, unknown>[] = [];
  let cursor: string | undefined;
  do {
    const page = await remote.client.listSecrets(tenant, cursor === undefined ? {} : { cursor });
    rows.push(...(page.secrets as unknown as Record<string, unknown>[]));
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  out.write(out.json ? JSON.stringify({ secrets: rows }) : table(rows));
}

export async function promote(remote: Remote, out: Output, tenant: string, name: string, version?: string) {
  const v = versionOf(version, "--version");
  const labels = await remote.client.promoteSecret(tenant, name, v === undefined ? {} : { version: v });
  out.write(out.json ? JSON.stringify(labels) : `${tenant}/${name}: ${JSON.stringify(labels)}`);
}

export async function rollback(remote: Remote, out: Output, tenant: string, name: string, version: string) {
  const labels = await remote.client.rollbackSecret(tenant, name, versionOf(version, "--version") as number);
  out.write(out.json ? JSON.stringify(labels) : `${tenant}/${name}: ${JSON.stringify(labels)}`);
}

export async function deleteSecret(remote: Remote, out: Output, tenant: string, name: string) {
  await remote.client.deleteSecret(tenant, name);
  out.write(out.json ? JSON.stringify({ deleted: true }) : `${tenant}/${name}: deleted`);
}

export async function versions(remote: Remote, out: Output, tenant: string, name: string) {
  const rows: Record<string, unknown>[] = [];
  let cursor: string | undefined;
  do {
    const page = await remote.operator.secretVersions(tenant, name, cursor === undefined ? {} : { cursor });
    rows.push(...(page.versions as unknown as Record<string, unknown>[]));
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  out.write(
    out.json
      ? JSON.stringify({ versions: rows })
      : table(rows, ["version", "labels", "createdAt", "createdBy", "dekVersion", "destroyed"]),
  );
}

export async function destroy(remote: Remote, out: Output, tenant: string, name: string, version: string) {
  const v = versionOf(version, "--version") as number;
  await remote.operator.destroyVersion(tenant, name, v);
  out.write(
    out.json ? JSON.stringify({ destroyed: v }) : `${tenant}/${name}: version ${v} destroyed (irreversible)`,
  );
}

export async function undelete(remote: Remote, out: Output, tenant: string, name: string) {
  const restored = await remote.operator.undeleteSecret(tenant, name);
  out.write(
    out.json ? JSON.stringify(restored) : `${tenant}/${name}: restored at version ${restored.version}`,
  );
}

export async function purge(remote: Remote, out: Output, tenant: string, name: string) {
  await remote.operator.purgeSecret(tenant, name);
  out.write(out.json ? JSON.stringify({ purged: true }) : `${tenant}/${name}: every version destroyed`);
}
