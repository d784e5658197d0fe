import { type ChainHead, describeVerification } from "../../shared/domain/audit-chain.ts";
import type { Env } from "../../shared/domain/env.ts";
import { UsageError } from "../errors.ts";
import { keyringFor, openLocalStore } from "../local-store.ts";
import type { Output } from "../output.ts";

const EXPECTED_HEAD = /^(.+):([1-9][0-9]{0,11}):([0-9a-f]{64})$/;

/**
 * `--expect scope:sequence:hash`, repeatable: heads recorded earlier (an export's trailer,
 * `GET …/audit/head`, a checkpoint log line) that a chain must still reach. Their scopes are verified
 * whether named or not.
 */
export function expectedHeads(raw: readonly string[]): Map<string, ChainHead> {
  const heads = new Map<string, ChainHead>();
  for (const value of raw) {
    const match = EXPECTED_HEAD.exec(value);
    if (match === null)
      throw new UsageError("--expect needs scope:sequence:hash (hash: 64 lowercase hex digits)");
    const [, scope, sequence, hash] = match as unknown as [string, string, string, string];
    heads.set(scope, { sequence: Number(sequence), hash });
  }
  return heads;
}

/** Walks chains in the local store; true when every one is intact. */
export async function verifyLocal(
  env: Env,
  out: Output,
  dataDir: string,
  requested: readonly string[],
  expected: ReadonlyMap<string, ChainHead>,
): Promise<boolean> {
  const store = await openLocalStore(env, dataDir, keyringFor(env, dataDir));
  try {
    const verifier = store.runtime.chainVerifier;
    const named = [...new Set([...requested, ...expected.keys()])];
    const scopes = named.length > 0 ? named : await verifier.scopes();
    const results = [];
    const lines = [];
    for (const scope of scopes) {
      const started = performance.now();
      const result = await verifier.verify(scope, expected.get(scope));
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      results.push(result);
      lines.push(`${describeVerification(result)} (${result.records} records in ${seconds} s)`);
    }
    if (out.json) out.write(JSON.stringify({ chains: results }, null, 2));
    else out.write(results.length === 0 ? "no audit chains in this store" : lines.join("\n"));
    return results.every((result) => result.intact);
  } finally {
    await store.close();
  }
}

/** A deleted tenant's certificate from the local store, and whether its MAC verifies here. */
export async function certificatesLocal(
  env: Env,
  out: Output,
  dataDir: string,
  tenants: readonly string[],
): Promise<boolean> {
  const store = await openLocalStore(env, dataDir, keyringFor(env, dataDir));
  try {
    let ok = true;
    const checks = [];
    for (const tenantId of tenants) {
      const check = await store.runtime.tenantDeletion.check(tenantId);
      if (check?.verified !== true) ok = false;
      checks.push({ tenantId, ...(check ?? { certificate: undefined, verified: false }) });
    }
    if (out.json) out.write(JSON.stringify({ certificates: checks }, null, 2));
    else
      out.write(
        checks
          .map(({ tenantId, certificate, verified }) =>
            certificate === undefined
              ? `${tenantId}: no deletion certificate`
              : `${tenantId}: ${verified ? "certificate verifies" : "certificate does NOT verify"}\n${JSON.stringify(certificate, null, 2)}`,
          )
          .join("\n"),
      );
    return ok;
  } finally {
    await store.close();
  }
}
