/**
 * `npm run audit:verify [-- scope ...]`: walks audit chains and prints, per scope, "intact up to
 * sequence N" or the first broken sequence and why. No scope means every chain in the table. Exit code
 * 0 when every chain is intact, 1 when one is broken, 2 when it could not check.
 *
 * `--expect scope:sequence:hash` (repeatable) holds a chain to a head recorded earlier (an export's
 * trailer, `GET …/audit/head`, a checkpoint log line): a chain that ends before it, or differs at it,
 * is reported `truncated`. The scope is verified even if not listed.
 *
 * It reads the same configuration as the service (KEK or KMS_KEY_ID with AUDIT_MAC_KEY_ID, TABLE_NAME,
 * DYNAMODB_ENDPOINT). Without DYNAMODB_ENDPOINT it opens the local server's dynalite files under
 * DATA_DIR, which only one process can hold: stop `npm start` first, or point it at a running store.
 */
import { join, resolve } from "node:path";
import { type ChainHead, describeVerification } from "../shared/domain/audit-chain.ts";
import { ConfigError, StrongboxError } from "../shared/domain/errors.ts";
import { readRuntimeConfig } from "../shared/runtime/config.ts";
import { createKeyring, createRuntime } from "../shared/runtime/container.ts";
import { ANCHOR_FILE, AnchorFile } from "../shared/storage/anchor-file.ts";
import { type OpenedTable, openTable } from "../shared/storage/local-dynamo.ts";

const EXPECTED_HEAD = /^(.+):([1-9][0-9]{0,11}):([0-9a-f]{64})$/;

/** Scopes named on the command line, and the heads `--expect` holds some of them to. */
function parseArguments(args: readonly string[]): { scopes: string[]; expected: Map<string, ChainHead> } {
  const scopes: string[] = [];
  const expected = new Map<string, ChainHead>();
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] as string;
    if (arg !== "--expect") {
      scopes.push(arg);
      continue;
    }
    const match = EXPECTED_HEAD.exec(args[i + 1] ?? "");
    if (match === null)
      throw new UsageError("--expect needs scope:sequence:hash (hash: 64 lowercase hex digits)");
    const [, scope, sequence, hash] = match as unknown as [string, string, string, string];
    expected.set(scope, { sequence: Number(sequence), hash });
    if (!scopes.includes(scope)) scopes.push(scope);
    i += 1;
  }
  return { scopes, expected };
}

class UsageError extends Error {}

async function main(): Promise<number> {
  const env = process.env;
  const { scopes: requested, expected } = parseArguments(process.argv.slice(2));
  env.AWS_EC2_METADATA_DISABLED ??= "true";
  // The SDK's notice that it will drop Node 20 in 2027 would land in the middle of the report.
  env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const dataDir = resolve(env.DATA_DIR ?? ".data");
  const config = readRuntimeConfig(env);
  const { keyring, chainKeys } = createKeyring(env, config, join(dataDir, "dev-kek"));
  let store: OpenedTable;
  try {
    store = await openTable({
      region: config.region,
      tableName: config.tableName,
      endpoint: config.dynamoEndpoint,
      localPath: join(dataDir, "dynamodb"),
      requestTimeoutMs: config.awsRequestTimeoutMs,
    });
  } catch {
    console.error(
      `cannot open ${join(dataDir, "dynamodb")}: stop the running server or set DYNAMODB_ENDPOINT`,
    );
    return 2;
  }
  try {
    const { table } = store;
    const anchors = new AnchorFile(join(dataDir, ANCHOR_FILE));
    const { chainVerifier } = createRuntime({ keyring, chainKeys, table, config, anchors });
    const scopes = requested.length > 0 ? requested : await chainVerifier.scopes();
    if (scopes.length === 0) console.log("no audit chains in this table");
    let broken = 0;
    for (const scope of scopes) {
      const started = performance.now();
      const result = await chainVerifier.verify(scope, expected.get(scope));
      const seconds = (performance.now() - started) / 1000;
      if (!result.intact) broken += 1;
      console.log(`${describeVerification(result)} (${result.records} records in ${seconds.toFixed(2)} s)`);
    }
    return broken === 0 ? 0 : 1;
  } finally {
    await store.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof ConfigError || error instanceof UsageError) console.error(error.message);
    else if (error instanceof StrongboxError) console.error(`${error.code}: ${error.message}`);
    else console.error(`audit verify failed: ${error instanceof Error ? error.name : "unknown error"}`);
    process.exit(2);
  },
);
