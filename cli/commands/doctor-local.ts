import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseEnv } from "node:util";
import { ACTIVE_KEK_VARIABLES } from "../../shared/crypto/kek-source.ts";
import { describeVerification } from "../../shared/domain/audit-chain.ts";
import type { Env } from "../../shared/domain/env.ts";
import { ConfigError } from "../../shared/domain/errors.ts";
import type { KeyringChoice } from "../../shared/runtime/container.ts";
import { ProblemFound, UsageError } from "../errors.ts";
import { keyringFor, type LocalStore, openLocalStore } from "../local-store.ts";
import type { Finding } from "../output.ts";

export interface LocalDoctorOptions {
  readonly dataDir: string;
  readonly tenant?: string;
  readonly compareEnv?: string;
}

const FIND_THE_KEK =
  "set CREDENTIALS_KEK to the KEK with that fingerprint (`strongbox kek fingerprint` reads a candidate from stdin); keep the current one as CREDENTIALS_KEK_PREVIOUS while a rotation is under way";

/** Which variable the KEK comes from, as the server would choose it. */
function kekSource(env: Env, dataDir: string): string | undefined {
  if (env.KMS_KEY_ID) return "KMS_KEY_ID";
  for (const name of ACTIVE_KEK_VARIABLES) {
    if (env[`${name}_FILE`]) return `${name}_FILE`;
    if (env[name]) return name;
  }
  const devKek = join(dataDir, "dev-kek");
  return existsSync(devKek) ? devKek : undefined;
}

/** Seed 000's "Is CREDENTIALS_KEK present? Is its format valid?", and its fingerprints. */
function checkKek(env: Env, dataDir: string): { finding: Finding; keys?: KeyringChoice } {
  const source = kekSource(env, dataDir);
  if (source === undefined) {
    return {
      finding: {
        check: "KEK",
        status: "problem",
        detail: `no KEK is configured: none of ${ACTIVE_KEK_VARIABLES.join(", ")} (or their _FILE forms) nor KMS_KEY_ID is set`,
        fix: "set CREDENTIALS_KEK to this store's KEK; only a new store gets a new one (openssl rand -base64 32)",
      },
    };
  }
  try {
    const keys = keyringFor(env, dataDir);
    const [active, ...previous] = keys.keyring.kekIds;
    const dev = keys.devMode ? " (a development KEK: not for production)" : "";
    const older = previous.length === 0 ? "" : `; previous: ${previous.join(", ")}`;
    return {
      finding: { check: "KEK", status: "ok", detail: `${source} holds KEK ${active}${dev}${older}` },
      keys,
    };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return {
      finding: {
        check: "KEK",
        status: "problem",
        detail: `${error.variable} is not usable: ${error.message}`,
        fix: `fix ${error.variable}: a KEK is base64 of 32 bytes, 44 characters ending in '='`,
      },
    };
  }
}

/** Seed 000 "works in the API, not in the runner": the two environments' KEKs, by fingerprint only. */
function compareEnvironments(dataDir: string, file: string, ours?: KeyringChoice): Finding {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new UsageError(`--compare-env: cannot read ${file}`);
  }
  const theirs = checkKek(parseEnv(text) as Env, dataDir);
  if (theirs.keys === undefined || ours === undefined) {
    const side = theirs.keys === undefined ? file : "this environment";
    return {
      check: "compare-env",
      status: "problem",
      detail: `${side} has no usable KEK${theirs.keys === undefined ? `: ${theirs.finding.detail}` : ""}`,
      fix: "give both environments the same CREDENTIALS_KEK, then restart the one that changed",
    };
  }
  const [a] = ours.keyring.kekIds;
  const [b] = theirs.keys.keyring.kekIds;
  if (a === b) {
    return { check: "compare-env", status: "ok", detail: `${file} uses the same active KEK (${a})` };
  }
  return {
    check: "compare-env",
    status: "problem",
    detail: `this environment's active KEK is ${a}; ${file}'s is ${b}`,
    fix: "give both environments the same CREDENTIALS_KEK, then restart the one that changed",
  };
}

async function checkCoverage(store: LocalStore): Promise<{ findings: Finding[]; missing: boolean }> {
  const coverage = await store.diagnosis.coverage();
  const findings: Finding[] = [];
  const counts = coverage.dataKeysByKek;
  if (counts === undefined) {
    findings.push({
      check: "KEK coverage",
      status: "info",
      detail: "the tenant directory is still being built; only the KEK registry was compared",
    });
  } else {
    const byKek = Object.entries(counts).map(([kekId, n]) => `${kekId}: ${n} DEKs`);
    findings.push({
      check: "DEKs per KEK",
      status: "info",
      detail: byKek.length === 0 ? "no tenant has a DEK yet" : byKek.join(", "),
    });
  }
  if (coverage.missing.length === 0) {
    findings.push({
      check: "KEK coverage",
      status: "ok",
      detail: `the configured KEKs (${coverage.configured.join(", ")}) cover every KEK the table depends on`,
    });
  } else {
    for (const kekId of coverage.missing) {
      const n = counts?.[kekId];
      findings.push({
        check: "KEK coverage",
        status: "problem",
        detail: `${n === undefined ? "the registry names" : `${n} DEKs are wrapped by`} KEK ${kekId}, which is not configured (configured: ${coverage.configured.join(", ")})`,
        fix: FIND_THE_KEK,
      });
    }
  }
  return { findings, missing: coverage.missing.length > 0 };
}

/** Seed 000 "Does tenant have wrapped_dek?", and whether each of its DEKs opens. */
async function checkTenant(store: LocalStore, tenantId: string): Promise<Finding[]> {
  const state = await store.diagnosis.tenant(tenantId);
  if (state === undefined) {
    return [
      {
        check: `tenant ${tenantId}`,
        status: "problem",
        detail: "no such tenant in this store",
        fix: "check the tenant id (strongbox tenants list), or the store DATA_DIR / TABLE_NAME point at",
      },
    ];
  }
  const findings: Finding[] = [];
  for (const key of state.dataKeys) {
    const ciphertexts = state.ciphertextsByDekVersion[String(key.version)] ?? 0;
    const current = key.version === state.currentDekVersion ? ", current" : "";
    findings.push(
      key.unwraps === true
        ? {
            check: `tenant ${tenantId} DEK v${key.version}`,
            status: "ok",
            detail: `wrapped by ${key.kekId}${current}; ${ciphertexts} ciphertexts; unwraps`,
          }
        : {
            check: `tenant ${tenantId} DEK v${key.version}`,
            status: "problem",
            detail: `wrapped by ${key.kekId}${current}; ${ciphertexts} ciphertexts; does not unwrap: ${key.unwraps}`,
            fix: FIND_THE_KEK,
          },
    );
  }
  return findings;
}

async function checkChains(store: LocalStore, only?: string): Promise<Finding[]> {
  const verifier = store.runtime.chainVerifier;
  const scopes = only === undefined ? await verifier.scopes() : ["_system", only];
  const findings: Finding[] = [];
  for (const scope of scopes) {
    const result = await verifier.verify(scope);
    findings.push(
      result.intact
        ? { check: `audit ${scope}`, status: "ok", detail: describeVerification(result) }
        : {
            check: `audit ${scope}`,
            status: "problem",
            detail: describeVerification(result),
            fix: "keep the table as it is for the investigation and follow docs/operations.md (verifying audit chains)",
          },
    );
  }
  return findings;
}

/** Offline: the configured KEKs against the local store, before or instead of starting the server. */
export async function doctorLocal(env: Env, options: LocalDoctorOptions): Promise<Finding[]> {
  const kek = checkKek(env, options.dataDir);
  const findings: Finding[] = [kek.finding];
  if (options.compareEnv !== undefined) {
    findings.push(compareEnvironments(options.dataDir, options.compareEnv, kek.keys));
  }
  if (kek.keys === undefined) return findings;
  let store: LocalStore;
  try {
    store = await openLocalStore(env, options.dataDir, kek.keys);
  } catch (error) {
    if (!(error instanceof ProblemFound)) throw error;
    findings.push({
      check: "store",
      status: "problem",
      detail: error.message,
      ...(error.fix === undefined ? {} : { fix: error.fix }),
    });
    return findings;
  }
  try {
    findings.push({ check: "store", status: "ok", detail: "reachable" });
    const coverage = await checkCoverage(store);
    findings.push(...coverage.findings);
    if (options.tenant !== undefined) findings.push(...(await checkTenant(store, options.tenant)));
    if (coverage.missing && kek.keys.keyring.kind === "local") {
      // A local KEK also keys the audit chain, so without the right one every record would look forged.
      findings.push({
        check: "audit",
        status: "info",
        detail: "chains not checked: their MAC keys derive from the KEK that is missing",
      });
    } else {
      findings.push(...(await checkChains(store, options.tenant)));
    }
  } finally {
    await store.close();
  }
  return findings;
}
