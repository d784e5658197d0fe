import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SingleBar } from "cli-progress";
import type { Env } from "../../shared/domain/env.ts";
import { ProblemFound, UsageError } from "../errors.ts";
import { keyringFor, openLocalStore } from "../local-store.ts";
import type { Output } from "../output.ts";

export interface DrillReport {
  readonly durationMs: number;
  readonly tenants: readonly {
    readonly tenantId: string;
    readonly secrets: number;
    readonly ciphertexts: number;
    readonly failures: readonly {
      readonly name: string;
      readonly version: number;
      readonly reason: string;
    }[];
    readonly chain: string;
    readonly chainIntact: boolean;
  }[];
  readonly ok: boolean;
}

/** Up to `n` distinct ids, drawn uniformly: a drill that always checked the first tenants would miss the rest. */
function sample<T>(items: readonly T[], n: number): T[] {
  const pool = [...items];
  for (let i = pool.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [pool[i], pool[j]] = [pool[j] as T, pool[i] as T];
  }
  return pool.slice(0, n);
}

/**
 * Seed 002 §9.3: restore a copy, start on it with the configured KEKs, and prove that sampled tenants
 * decrypt at every version and that their chains verify. It works on a copy, so the live store is
 * only read; with the server running the copy is crash-consistent, as a real restore would be.
 */
export async function drDrill(
  env: Env,
  out: Output,
  options: { dataDir: string; tenants: string },
): Promise<boolean> {
  if (env.DYNAMODB_ENDPOINT) {
    throw new UsageError(
      "dr-drill restores a copy of a local store: unset DYNAMODB_ENDPOINT and give --data-dir",
    );
  }
  if (!/^[1-9][0-9]{0,3}$/.test(options.tenants))
    throw new UsageError("--tenants must be a whole number from 1");
  const source = join(options.dataDir, "dynamodb");
  if (!existsSync(source))
    throw new ProblemFound(`no store at ${source}`, "give --data-dir the store's folder");
  const started = performance.now();
  const restored = mkdtempSync(join(tmpdir(), "strongbox-drill-"));
  try {
    cpSync(source, join(restored, "dynamodb"), {
      recursive: true,
      filter: (path) => !path.endsWith("/LOCK"),
    });
    const store = await openLocalStore(
      { ...env, DATA_DIR: restored },
      restored,
      keyringFor(env, options.dataDir),
    );
    try {
      const chosen = sample(await store.diagnosis.tenantIds(10_000), Number(options.tenants));
      const bar = new SingleBar({
        format: "drill {bar} {value}/{total} tenants",
        stream: process.stderr,
        noTTYOutput: false,
      });
      if (process.stderr.isTTY) bar.start(chosen.length, 0);
      const tenants = [];
      for (const tenantId of chosen) {
        const opened = await store.diagnosis.openEverything(tenantId);
        const chain = await store.runtime.chainVerifier.verify(tenantId);
        tenants.push({
          tenantId,
          ...opened,
          chain: chain.intact
            ? `intact up to sequence ${chain.verifiedThrough}`
            : `broken at sequence ${chain.break?.sequence}: ${chain.break?.message}`,
          chainIntact: chain.intact,
        });
        if (process.stderr.isTTY) bar.increment();
      }
      if (process.stderr.isTTY) bar.stop();
      const report: DrillReport = {
        durationMs: Math.round(performance.now() - started),
        tenants,
        ok: tenants.length > 0 && tenants.every((t) => t.failures.length === 0 && t.chainIntact),
      };
      printReport(out, report);
      return report.ok;
    } finally {
      await store.close();
    }
  } finally {
    rmSync(restored, { recursive: true, force: true });
  }
}

function printReport(out: Output, report: DrillReport): void {
  if (out.json) {
    out.write(JSON.stringify(report, null, 2));
    return;
  }
  const secrets = report.tenants.reduce((n, t) => n + t.secrets, 0);
  const ciphertexts = report.tenants.reduce((n, t) => n + t.ciphertexts, 0);
  const failures = report.tenants.flatMap((t) => t.failures.map((f) => ({ tenant: t.tenantId, ...f })));
  const lines = [
    `restored a copy and checked ${report.tenants.length} tenants in ${(report.durationMs / 1000).toFixed(2)} s`,
    `secrets: ${secrets}; ciphertexts opened: ${ciphertexts - failures.length} of ${ciphertexts}; failures: ${failures.length}`,
    ...report.tenants.map((t) => `  ${t.tenantId}: ${t.secrets} secrets, audit chain ${t.chain}`),
    ...failures.map((f) => `  FAILED ${f.tenant}/${f.name} v${f.version}: ${f.reason}`),
  ];
  if (report.tenants.length === 0) lines.push("the store has no tenants: nothing was proven");
  out.write(lines.join("\n"));
}
