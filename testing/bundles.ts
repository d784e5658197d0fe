import { execFile, spawn } from "node:child_process";
import { mkdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { esbuildOptions, FUNCTION_ENTRIES, type FunctionName } from "../infra/bundling.ts";

const root = resolve(import.meta.dirname, "..");
const execFileAsync = promisify(execFile);

export interface Bundle {
  readonly file: string;
  readonly bytes: number;
  /** What of `bytes` is our code and other libraries: everything but the AWS SDK and its Smithy core. */
  readonly bytesWithoutSdk: number;
  /** Every source file and package file the bundle took in, as esbuild names them. */
  readonly inputs: readonly string[];
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
    write: false,
  });
  // Test files build the same bundle in parallel: each output is written aside and renamed into
  // place, so a process importing it never reads a half-written file.
  for (const output of result.outputFiles ?? []) {
    const aside = `${output.path}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    writeFileSync(aside, output.contents);
    renameSync(aside, output.path);
  }
  const file = join(dir, "index.mjs");
  const inputs = Object.entries(result.metafile.outputs).find(([path]) => path.endsWith("index.mjs"))?.[1]
    .inputs;
  const bytesWithoutSdk = Object.entries(inputs ?? {})
    .filter(([path]) => !SDK_PACKAGE.test(path))
    .reduce((sum, [, input]) => sum + input.bytesInOutput, 0);
  return { file, bytes: statSync(file).size, bytesWithoutSdk, inputs: Object.keys(inputs ?? {}) };
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

/** What a fresh Node process running a bundle ended with: the Lambda runtime's view of an init or invoke. */
export interface BundleProcess {
  /** 0 when the process finished, as an init (and every invocation) that succeeded. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runBundleProcess(
  bundle: Bundle,
  env: Record<string, string>,
  script: string,
  stdin: string | undefined,
): Promise<BundleProcess> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      env: { PATH: process.env.PATH ?? "", ...env, BUNDLE_URL: pathToFileURL(bundle.file).href },
      stdio: [stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr?.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code, stdout, stderr }));
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

export async function invokeBundle(
  bundle: Bundle,
  env: Record<string, string>,
  events: readonly unknown[],
): Promise<Invocation> {
  const { code, stdout, stderr } = await runBundleProcess(bundle, env, RUNNER, JSON.stringify(events));
  if (code !== 0) throw new Error(`bundle process exited with ${code}: ${stderr.slice(0, 2000)}`);
  const at = stdout.lastIndexOf(MARKER);
  const result = JSON.parse(stdout.slice(at + MARKER.length)) as Omit<Invocation, "logs">;
  return { ...result, logs: stdout.slice(0, at) + stderr };
}

/**
 * Only the init of a bundled function: a fresh process imports it, as the Lambda runtime does, and
 * exits. For cold starts that must refuse, whose output (the EMF lines on stdout, the error log on
 * stderr) is what the test reads.
 */
export function coldStart(bundle: Bundle, env: Record<string, string>): Promise<BundleProcess> {
  return runBundleProcess(bundle, env, "await import(process.env.BUNDLE_URL);", undefined);
}
