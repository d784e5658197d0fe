/**
 * `npm run soak -- --minutes N` (or `--seconds N`): mixed traffic against the real `npm start` server
 * for that long, then the checks (testing/soak.ts). Prints the figures and exits non-zero if any check
 * failed.
 */
import { formatSoakReport, runSoak } from "../testing/soak.ts";

function durationMs(args: readonly string[]): number {
  const [flag, value, ...rest] = args;
  const units: Record<string, number> = { "--minutes": 60_000, "--seconds": 1000 };
  const unit = flag === undefined ? undefined : units[flag];
  const amount = Number(value);
  if (unit === undefined || rest.length > 0 || !Number.isFinite(amount) || amount <= 0) {
    throw new Error("usage: npm run soak -- --minutes N | --seconds N");
  }
  return amount * unit;
}

async function main(): Promise<number> {
  const ms = durationMs(process.argv.slice(2));
  console.log(`soak: ${ms / 1000} s against npm start (tsx local/server.ts) in a child process`);
  const report = await runSoak({ durationMs: ms });
  console.log(formatSoakReport(report));
  return report.failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error("soak failed:", error);
    process.exit(1);
  },
);
