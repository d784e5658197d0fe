import { execFile, spawn } from "node:child_process";
import { mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { esbuildOptions, FUNCTION_ENTRIES, type FunctionName } from "../infra/bundling.ts";
import { DUMMY_CREDENTIALS } from "./harness.ts";
import type { KmsEndpoint } from "./kms-endpoint.ts";
import type { SecretsManagerEndpoint } from "./secrets-manager-endpoint.ts";

const root = resolve(import.meta.dirname, "..");
const execFileAsync = promisify(execFile);

export interface Bundle {
  readonly file: string;
  readonly bytes: number;
  /** What of `bytes` is our code and other libraries: everything but the AWS SDK and its Smithy core. */
  readonly bytesWithoutSdk: number;
}

const SDK_PACKAGE = /node_modules\/(@aws-sdk|@smithy|@aws-crypto)\//;

/**
 * Builds a function the way its NodejsFunction does (infra/bundling.ts). The output goes under the
 * repository's node_modules so that, in the bench's SDK-external variant, @aws-sdk/* resolves there as the
 * Lambda runtime's own copy would.
 */
export async function buildBundle(
  name: FunctionName,
  /** Only the cold-start bench sets this, to show what taking the runtime's SDK instead would change. */
  options: { readonly sdkExternal?: boolean } = {},
): Promise<Bundle> {
  const dir = join(
    root,
    "node_modules",
    ".cache",
    "strongbox-bundles",
    options.sdkExternal ? `${name}-sdk-external` : name,
  );
  mkdirSync(dir, { recursive: true });
  const deployed = esbuildOptions(join(root, FUNCTION_ENTRIES[name]), dir);
  const result = await build({
    ...deployed,
    ...(options.sdkExternal ? { external: ["@aws-sdk/*"] } : {}),
    metafile: true,
  });
  const file = join(dir, "index.mjs");
  const inputs = Object.entries(result.metafile.outputs).find(([path]) => path.endsWith("index.mjs"))?.[1]
    .inputs;
  const bytesWithoutSdk = Object.entries(inputs ?? {})
    .filter(([path]) => !SDK_PACKAGE.test(path))
    .reduce((sum, [, input]) => sum + input.bytesInOutput, 0);
  return { file, bytes: statSync(file).size, bytesWithoutSdk };
}

// Loads the bundle the way the Lambda runtime does (an ES module import of index.mjs, then `handler`), and
// invokes it with each event in turn. Plain node, as deployed (no --enable-source-maps): no tsx, no vitest
// transforms, no module cache shared.
const RUNNER = `
const started = performance.now();
const { handler } = await import(process.env.BUNDLE_URL);
const imported = performance.now();
let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
let firstDone;
// As a function configured with a 60 s timeout sees it.
const deadline = Date.now() + 60000;
for (const [n, event] of JSON.parse(input).entries()) {
  results.push(await handler(event, { awsRequestId: "invoke-" + n, functionName: "strongbox", getRemainingTimeInMillis: () => deadline - Date.now() }));
  firstDone ??= performance.now();
}
process.stdout.write("\\n@@result@@" + JSON.stringify({ results, importMs: imported - started, firstMs: (firstDone ?? imported) - started }));
`;

export interface Invocation {
  readonly results: any[];
  /** From the start of the import to the handler module being ready. */
  readonly importMs: number;
  /** From the start of the import to the first invocation's answer: the cold start. */
  readonly firstMs: number;
  /** Everything else the process wrote: its logs. */
  readonly logs: string;
}

const MARKER = "\n@@result@@";

/** Milliseconds a fresh Node process spends importing the SDK clients the functions use, median of `runs`. */
export async function sdkImportMs(runs: number): Promise<number[]> {
  const script = `const t = performance.now();
await import("@aws-sdk/client-dynamodb"); await import("@aws-sdk/lib-dynamodb");
await import("@aws-sdk/client-kms"); await import("@aws-sdk/client-secrets-manager");
await import("@aws-sdk/client-eventbridge");
process.stdout.write(String(performance.now() - t));`;
  const times: number[] = [];
  for (let n = 0; n < runs; n++) {
    const { stdout } = await execFileAsync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: root,
      env: { PATH: process.env.PATH ?? "", AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
    });
    times.push(Number(stdout));
  }
  return times;
}

export function invokeBundle(
  bundle: Bundle,
  env: Record<string, string>,
  events: readonly unknown[],
): Promise<Invocation> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", RUNNER], {
      env: { PATH: process.env.PATH ?? "", ...env, BUNDLE_URL: pathToFileURL(bundle.file).href },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) reject(new Error(`bundle process exited with ${code}: ${stderr.slice(0, 2000)}`));
      else {
        const at = stdout.lastIndexOf(MARKER);
        const result = JSON.parse(stdout.slice(at + MARKER.length)) as Omit<Invocation, "logs">;
        resolvePromise({ ...result, logs: stdout.slice(0, at) + stderr });
      }
    });
    child.stdin.end(JSON.stringify(events));
  });
}

/**
 * The environment the stacks give a deployed API function, with loopback stand-ins for DynamoDB, KMS
 * and Secrets Manager; the bootstrap token's secret half is stored in the Secrets Manager stand-in.
 */
export function loopbackFunctionEnv(options: {
  readonly stage: string;
  readonly tableName: string;
  readonly dynamoEndpoint: string;
  readonly kms: KmsEndpoint;
  readonly kmsKeyId: string;
  readonly macKeyArn: string;
  readonly secrets: SecretsManagerEndpoint;
  readonly bootstrapSecret: string;
}): Record<string, string> {
  return {
    TABLE_NAME: options.tableName,
    DYNAMODB_ENDPOINT: options.dynamoEndpoint,
    KMS_KEY_ID: options.kmsKeyId,
    KMS_ENDPOINT: options.kms.endpoint,
    AUDIT_MAC_KEY_ID: options.macKeyArn,
    BOOTSTRAP_TOKEN_SECRET_ARN: options.secrets.putSecret(
      `strongbox/${options.stage}/bootstrap-admin-token`,
      options.bootstrapSecret,
    ),
    SECRETS_MANAGER_ENDPOINT: options.secrets.endpoint,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    NODE_ENV: "production",
  };
}
