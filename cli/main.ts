/**
 * `strongbox`: the runbooks' procedures as commands (docs/cli.md). Exit codes: 0 fine, 1 a problem
 * was found, 2 a usage error. Errors are one line naming the fix, never a stack trace.
 */
import { resolve } from "node:path";
import { Command, CommanderError } from "commander";
import { ConfigError, StrongboxError } from "../shared/domain/errors.ts";
import { EXIT, ProblemFound, UsageError } from "./errors.ts";
import { consoleOutput, printFindings } from "./output.ts";

// Each command loads its own code when it runs: `kek` and usage errors need no AWS SDK, and a
// command's import cost is paid only by that command.
const env = process.env;
env.AWS_EC2_METADATA_DISABLED ??= "true";
// The SDK's notice that it will drop Node 20 would land in the middle of a report.
env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

let exitCode: number = EXIT.ok;
const fail = () => {
  exitCode = EXIT.problem;
};

const program = new Command("strongbox")
  .description("Strongbox operator commands: see docs/cli.md")
  .option("--json", "print JSON for scripts instead of tables")
  .option("--data-dir <dir>", "the local store's folder (default: DATA_DIR or .data)")
  .showHelpAfterError()
  .exitOverride();

const globals = () => program.opts<{ json?: boolean; dataDir?: string }>();
const out = () => consoleOutput(globals().json === true);
const dataDir = () => resolve(globals().dataDir ?? env.DATA_DIR ?? ".data");

program
  .command("doctor")
  .description("is a KEK configured and valid, does it cover the table, are the chains intact")
  .option("--tenant <id>", "also check this tenant's DEKs and what each wraps")
  .option("--compare-env <file>", "compare this environment's KEK with another's (.env file), by fingerprint")
  .action(async (options: { tenant?: string; compareEnv?: string }) => {
    const { doctorLocal } = await import("./commands/doctor-local.ts");
    const findings = await doctorLocal(env, { dataDir: dataDir(), ...options });
    if (!printFindings(out(), findings)) fail();
  });

const kek = program.command("kek").description("the local KEK: Shamir backup shares, fingerprints");
kek
  .command("split")
  .description("split the configured local KEK (or one piped with --stdin) into Shamir shares")
  .requiredOption("--shares <n>", "how many shares")
  .requiredOption("--threshold <k>", "how many shares rebuild the KEK")
  .option("--out-dir <dir>", "write one file per share (mode 0600) instead of printing them one by one")
  .option("--stdin", "read the KEK to split from stdin")
  .action(async (options: { shares: string; threshold: string; outDir?: string; stdin?: boolean }) => {
    const { splitCommand } = await import("./commands/kek-shares.ts");
    await splitCommand(env, out(), { ...options, dataDir: dataDir() });
  });
kek
  .command("combine")
  .description("rebuild a KEK from share files (or share lines on stdin) into a new file")
  .argument("[files...]", "share files; without them, shares are read from stdin one per line")
  .requiredOption("--out <file>", "where the rebuilt KEK is written (mode 0600; never printed)")
  .action(async (files: string[], options: { out: string }) => {
    const { combineCommand } = await import("./commands/kek-shares.ts");
    await combineCommand(out(), { files, outFile: options.out });
  });
kek
  .command("fingerprint")
  .description("print the fingerprint of a KEK piped on stdin, to match it with doctor's")
  .action(async () => {
    const { fingerprintCommand } = await import("./commands/kek-shares.ts");
    await fingerprintCommand(out());
  });

const audit = program.command("audit").description("the audit trail");
audit
  .command("verify")
  .description("walk audit chains in the local store; exit 1 on any break")
  .argument("[scopes...]", "tenant ids or _system; default every chain")
  .action(async (scopes: string[]) => {
    const { verifyLocal } = await import("./commands/audit-local.ts");
    if (!(await verifyLocal(env, out(), dataDir(), scopes))) fail();
  });

program
  .command("dr-drill")
  .description("restore a copy of the local store and prove sampled tenants decrypt and verify")
  .option("--tenants <n>", "how many tenants to sample", "3")
  .action(async (options: { tenants: string }) => {
    const { drDrill } = await import("./commands/dr-drill.ts");
    if (!(await drDrill(env, out(), { dataDir: dataDir(), tenants: options.tenants }))) fail();
  });

/** One line, naming the fix; the exit code says which kind of failure it was. */
function report(error: unknown): number {
  if (error instanceof CommanderError) {
    return error.code === "commander.helpDisplayed" || error.code === "commander.version"
      ? EXIT.ok
      : EXIT.usage;
  }
  if (error instanceof UsageError) {
    process.stderr.write(`error: ${error.message}\n`);
    return EXIT.usage;
  }
  if (error instanceof ProblemFound) {
    process.stderr.write(
      `problem: ${error.message}${error.fix === undefined ? "" : `\nfix: ${error.fix}`}\n`,
    );
    return EXIT.problem;
  }
  if (error instanceof ConfigError) {
    process.stderr.write(
      `problem: ${error.message}\nfix: set ${error.variable} correctly (docs/configuration.md)\n`,
    );
    return EXIT.problem;
  }
  if (error instanceof StrongboxError) {
    process.stderr.write(`problem: ${error.code}: ${error.message}\n`);
    return EXIT.problem;
  }
  // Unknown errors may carry anything in their message; only the class name is shown.
  process.stderr.write(`problem: unexpected ${error instanceof Error ? error.name : "failure"}\n`);
  return EXIT.problem;
}

try {
  await program.parseAsync(process.argv);
  process.exitCode = exitCode;
} catch (error) {
  process.exitCode = report(error);
}
