/**
 * `strongbox`: the runbooks' procedures as commands (docs/cli.md). Exit codes: 0 fine, 1 a problem
 * was found, 2 a usage error. Errors are one line naming the fix, never a stack trace.
 */
import { resolve } from "node:path";
import { Command, CommanderError } from "commander";
import { ConfigError, StrongboxError } from "../shared/domain/errors.ts";
import { EXIT, ProblemFound, UsageError } from "./errors.ts";
import { consoleOutput, printFindings } from "./output.ts";
import type { Remote } from "./remote.ts";

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
  .option("--url <url>", "the API to talk to (default: STRONGBOX_URL)")
  .option(
    "--token-file <file>",
    "read the bearer token from a file (default: STRONGBOX_TOKEN_FILE, then STRONGBOX_TOKEN)",
  )
  .option("--aws", "sign requests with SigV4 from the AWS credential chain instead of a token")
  .showHelpAfterError()
  .exitOverride();

const globals = () =>
  program.opts<{ json?: boolean; dataDir?: string; url?: string; tokenFile?: string; aws?: boolean }>();
const out = () => consoleOutput(globals().json === true);
const dataDir = () => resolve(globals().dataDir ?? env.DATA_DIR ?? ".data");
const remoteWanted = () => (globals().url ?? env.STRONGBOX_URL ?? "") !== "";

/** Runs work against the API; its refusals become one line and exit 1, and `false` means a problem found. */
async function withRemote(work: (remote: Remote) => Promise<unknown>): Promise<void> {
  const { connect, remoteProblem } = await import("./remote.ts");
  const { url, tokenFile, aws } = globals();
  const remote = connect(env, {
    ...(url === undefined ? {} : { url }),
    ...(tokenFile === undefined ? {} : { tokenFile }),
    ...(aws === true ? { aws } : {}),
  });
  try {
    if ((await work(remote)) === false) fail();
  } catch (error) {
    throw remoteProblem(error, remote.url);
  }
}

const ops = () => import("./commands/operations.ts");
const secretsCommands = () => import("./commands/secrets.ts");
const incident = () => import("./commands/incident.ts");

program
  .command("doctor")
  .description("is a KEK configured and valid, does it cover the table, are the chains intact")
  .option("--tenant <id>", "also check this tenant's DEKs and what each wraps")
  .option("--compare-env <file>", "compare this environment's KEK with another's (.env file), by fingerprint")
  .action(async (options: { tenant?: string; compareEnv?: string }) => {
    if (remoteWanted()) {
      if (options.compareEnv !== undefined)
        throw new UsageError("--compare-env reads local files: run it without --url");
      const { doctorRemote } = await import("./commands/doctor-remote.ts");
      await withRemote(async (remote) => printFindings(out(), await doctorRemote(remote, options)));
      return;
    }
    const { doctorLocal } = await import("./commands/doctor-local.ts");
    const findings = await doctorLocal(env, { dataDir: dataDir(), ...options });
    if (!printFindings(out(), findings)) fail();
  });

const tenants = program.command("tenants").description("tenants (API)");
tenants
  .command("create")
  .argument("<tenant>")
  .action((id: string) => withRemote(async (r) => (await ops()).createTenant(r, out(), id)));
tenants.command("list").action(() => withRemote(async (r) => (await ops()).listTenants(r, out())));
tenants
  .command("delete")
  .description("crypto-shred a tenant: its DEKs, then its items; prints the deletion certificate")
  .argument("<tenant>")
  .option("--confirm <tenant>", "the tenant id again")
  .action((id: string, options: { confirm?: string }) =>
    withRemote(async (r) => (await ops()).deleteTenant(r, out(), id, options.confirm)),
  );
tenants
  .command("seal")
  .description("the kill switch: every call on the tenant (or, with --all, every tenant) is refused with 423")
  .argument("[tenant]")
  .option("--all", "seal every tenant at once")
  .option("--reason <text>", "why (required; it goes into the audit trail)")
  .action((id: string | undefined, options: { all?: boolean; reason?: string }) =>
    withRemote(async (r) => (await incident()).seal(r, out(), id, options)),
  );
tenants
  .command("unseal")
  .description("lift the seal; where the stage wants a second admin, the first call only asks")
  .argument("[tenant]")
  .option("--all", "lift the global seal")
  .option("--reason <text>", "why (required; it goes into the audit trail)")
  .action((id: string | undefined, options: { all?: boolean; reason?: string }) =>
    withRemote(async (r) => (await incident()).unseal(r, out(), id, options)),
  );
tenants
  .command("certificate")
  .description("a deleted tenant's certificate and whether its MAC verifies (the API's with --url)")
  .argument("<tenants...>")
  .action(async (ids: string[]) => {
    if (remoteWanted()) {
      await withRemote(async (r) => (await ops()).certificatesRemote(r, out(), ids));
      return;
    }
    const { certificatesLocal } = await import("./commands/audit-local.ts");
    if (!(await certificatesLocal(env, out(), dataDir(), ids))) fail();
  });
tenants
  .command("show")
  .argument("<tenant>")
  .action((id: string) => withRemote(async (r) => (await ops()).showTenant(r, out(), id)));

const secrets = program
  .command("secrets")
  .description("secrets (API); values only ever from stdin or a file");
secrets
  .command("put")
  .description("write the next version, the value read from stdin or --from-file")
  .argument("<tenant>")
  .argument("<name>")
  .argument("[value]", "refused: a value is never taken as an argument")
  .option("--from-file <file>", "read the value from a file")
  .option("--stage <stage>", "pending: write it beside the current one, for a BYOK rotation")
  .action(
    async (
      tenant: string,
      name: string,
      value: string | undefined,
      options: { fromFile?: string; stage?: string },
    ) => {
      const s = await secretsCommands();
      s.refuseValueArgument(value);
      await withRemote((r) => s.putSecret(r, out(), tenant, name, options));
    },
  );
secrets
  .command("get")
  .description("print the value only (or JSON with --json); --reason goes into the audit trail")
  .argument("<tenant>")
  .argument("<name>")
  .option("--reason <text>", "why it is read (required)")
  .option("--version <n>")
  .option("--stage <stage>", "current, pending or previous")
  .action((tenant: string, name: string, options: { reason?: string; version?: string; stage?: string }) =>
    withRemote(async (r) => (await secretsCommands()).getSecret(r, out(), tenant, name, options)),
  );
secrets
  .command("list")
  .argument("<tenant>")
  .action((tenant: string) =>
    withRemote(async (r) => (await secretsCommands()).listSecrets(r, out(), tenant)),
  );
secrets
  .command("promote")
  .argument("<tenant>")
  .argument("<name>")
  .option("--version <n>", "the pending version to promote")
  .action((tenant: string, name: string, options: { version?: string }) =>
    withRemote(async (r) => (await secretsCommands()).promote(r, out(), tenant, name, options.version)),
  );
secrets
  .command("rollback")
  .argument("<tenant>")
  .argument("<name>")
  .requiredOption("--version <n>", "the previous version, to make current again")
  .action((tenant: string, name: string, options: { version: string }) =>
    withRemote(async (r) => (await secretsCommands()).rollback(r, out(), tenant, name, options.version)),
  );
secrets
  .command("versions")
  .description("every version's metadata: labels, creation, DEK version, destroyed or not; never a value")
  .argument("<tenant>")
  .argument("<name>")
  .action((tenant: string, name: string) =>
    withRemote(async (r) => (await secretsCommands()).versions(r, out(), tenant, name)),
  );
secrets
  .command("destroy")
  .description("destroy one version irreversibly: its ciphertext is removed")
  .argument("<tenant>")
  .argument("<name>")
  .requiredOption("--version <n>")
  .action((tenant: string, name: string, options: { version: string }) =>
    withRemote(async (r) => (await secretsCommands()).destroy(r, out(), tenant, name, options.version)),
  );
secrets
  .command("undelete")
  .argument("<tenant>")
  .argument("<name>")
  .action((tenant: string, name: string) =>
    withRemote(async (r) => (await secretsCommands()).undelete(r, out(), tenant, name)),
  );
secrets
  .command("purge")
  .description("destroy every version of a name")
  .argument("<tenant>")
  .argument("<name>")
  .action((tenant: string, name: string) =>
    withRemote(async (r) => (await secretsCommands()).purge(r, out(), tenant, name)),
  );
secrets
  .command("delete")
  .argument("<tenant>")
  .argument("<name>")
  .action((tenant: string, name: string) =>
    withRemote(async (r) => (await secretsCommands()).deleteSecret(r, out(), tenant, name)),
  );

const rotate = program.command("rotate").description("rotation (API)");
rotate
  .command("secret")
  .argument("<tenant>")
  .argument("<name>")
  .action((tenant: string, name: string) =>
    withRemote(async (r) => (await ops()).rotateSecret(r, out(), tenant, name)),
  );
rotate
  .command("dek")
  .description("create the tenant's next DEK and follow the sweep's live counts to the end")
  .argument("<tenant>")
  .option("--no-wait", "return once the DEK is created")
  .option("--run", "drive the scheduled work (admin) instead of waiting for its next run")
  .option("--timeout <duration>", "how long to follow the sweep", "10m")
  .action((tenant: string, options: { wait: boolean; run?: boolean; timeout: string }) =>
    withRemote(async (r) => (await ops()).rotateDek(r, out(), tenant, options)),
  );

const tokens = program.command("tokens").description("bearer tokens (API)");
tokens
  .command("issue")
  .description("print a new token once, on stdout alone")
  .requiredOption("--role <role>", "admin, operator, runner or auditor")
  .requiredOption("--tenants <list>", "comma-separated tenant ids; * for admin")
  .option("--ttl <duration>", "lifetime, such as 12h or 30d", "30d")
  .option("--wrap <duration>", "print a single-use wrapping token (sbw_…) for it instead, live this long")
  .action((options: { role: string; tenants: string; ttl: string; wrap?: string }) =>
    withRemote(async (r) => (await ops()).issueToken(r, out(), options)),
  );
program
  .command("unwrap")
  .description("unwrap a wrapping token piped on stdin, once; prints the value or token it holds")
  .action(() => withRemote(async (r) => (await ops()).unwrap(r, out())));
tokens
  .command("revoke")
  .argument("<id>")
  .action((id: string) => withRemote(async (r) => (await ops()).revokeToken(r, out(), id)));
tokens
  .command("list")
  .description("the access review: every token's metadata (never a hash), filtered")
  .option("--role <role>")
  .option("--tenant <id>")
  .option("--status <status>", "active, revoked, expired or failed_integrity")
  .option("--expires-before <time>", "ISO 8601 UTC")
  .action((options: { role?: string; tenant?: string; status?: string; expiresBefore?: string }) =>
    withRemote(async (r) => (await incident()).listTokens(r, out(), options)),
  );

const breakGlass = program
  .command("break-glass")
  .description("time-limited admin access to one tenant, approved by another admin (seed 002 §4.2)");
breakGlass
  .command("request")
  .argument("<tenant>")
  .option("--reason <text>", "why (required)")
  .option("--minutes <n>", "how long, once approved (1 to 60)", "30")
  .action((tenant: string, options: { reason?: string; minutes: string }) =>
    withRemote(async (r) => (await incident()).requestBreakGlass(r, out(), tenant, options)),
  );
breakGlass
  .command("approve")
  .description("a different admin approves; the deadline starts now")
  .argument("<tenant>")
  .argument("<id>")
  .action((tenant: string, id: string) =>
    withRemote(async (r) => (await incident()).approveBreakGlass(r, out(), tenant, id)),
  );
breakGlass
  .command("activate")
  .description("the requester takes the sbg_ credential, once; printed on stdout alone")
  .argument("<tenant>")
  .argument("<id>")
  .action((tenant: string, id: string) =>
    withRemote(async (r) => (await incident()).activateBreakGlass(r, out(), tenant, id)),
  );
breakGlass
  .command("revoke")
  .description("end it early: the credential stops at once")
  .argument("<tenant>")
  .argument("<id>")
  .action((tenant: string, id: string) =>
    withRemote(async (r) => (await incident()).revokeBreakGlass(r, out(), tenant, id)),
  );

program
  .command("smoke")
  .description("write a throwaway secret, read it back, remove it (seed 001's smoke test)")
  .requiredOption("--tenant <id>", "the tenant to test in")
  .action((options: { tenant: string }) =>
    withRemote(async (r) => (await import("./commands/smoke.ts")).smoke(r, out(), options.tenant)),
  );

const kek = program
  .command("kek")
  .description("KEK status and re-wrap (API); Shamir shares and fingerprints (local)");
kek
  .command("status")
  .description("DEKs per KEK, which may be removed, and the re-wrap's state")
  .action(() => withRemote(async (r) => (await ops()).kekStatus(r, out())));
kek
  .command("rewrap")
  .description("re-wrap every DEK onto the active KEK, with a bar per KEK fingerprint")
  .option("--no-wait", "return once the re-wrap is requested")
  .option("--timeout <duration>", "how long to follow it", "30m")
  .action((options: { wait: boolean; timeout: string }) =>
    withRemote(async (r) => (await ops()).kekRewrap(r, out(), options)),
  );
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
  .command("query")
  .argument("<scope>", "a tenant id or _system")
  .option("--action <action>")
  .option("--secret <name>")
  .option("--actor <actor>")
  .option("--outcome <outcome>")
  .option("--from <time>")
  .option("--to <time>")
  .option("--limit <n>")
  .action((scope: string, options: Record<string, string | undefined>) => {
    const { limit, ...filter } = options;
    return withRemote(async (r) => (await ops()).auditQuery(r, out(), scope, filter as never, limit));
  });
audit
  .command("export")
  .description("every page as JSON lines into a file, each page's trailer checked")
  .argument("<scope>", "a tenant id or _system")
  .requiredOption("--out <file>")
  .action((scope: string, options: { out: string }) =>
    withRemote(async (r) => (await ops()).auditExport(r, out(), scope, options.out)),
  );
audit
  .command("verify")
  .description("walk audit chains (the API's with --url, else the local store's); exit 1 on any break")
  .argument("[scopes...]", "tenant ids or _system; default every chain (local store)")
  .option(
    "--expect <scope:sequence:hash>",
    "a head recorded earlier that the chain must still reach; repeatable",
    (value: string, previous: string[]) => [...previous, value],
    [] as string[],
  )
  .action(async (scopes: string[], options: { expect: string[] }) => {
    const { expectedHeads, verifyLocal } = await import("./commands/audit-local.ts");
    const expected = expectedHeads(options.expect);
    if (remoteWanted()) {
      await withRemote(async (r) => (await ops()).auditVerifyRemote(r, out(), scopes, expected));
      return;
    }
    if (!(await verifyLocal(env, out(), dataDir(), scopes, expected))) fail();
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
