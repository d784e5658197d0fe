import { spawn } from "node:child_process";
import { mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { esbuildOptions, FUNCTION_ENTRIES, type FunctionName } from "../../infra/bundling.ts";

const root = resolve(import.meta.dirname, "..", "..");

export interface Bundle {
  readonly file: string;
  readonly bytes: number;
}

/**
 * Builds a function the way its NodejsFunction does (infra/bundling.ts). The output goes under the
 * repository's node_modules so the externals (@aws-sdk/*) resolve, as the Lambda runtime provides them.
 */
export async function buildBundle(name: FunctionName, outdir?: string): Promise<Bundle> {
  const dir = outdir ?? join(root, "node_modules", ".cache", "strongbox-bundles", name);
  mkdirSync(dir, { recursive: true });
  await build(esbuildOptions(join(root, FUNCTION_ENTRIES[name]), dir));
  const file = join(dir, "index.mjs");
  return { file, bytes: statSync(file).size };
}

// Loads the bundle the way the Lambda runtime does (an ES module import of index.mjs, then `handler`), and
// invokes it with each event in turn. Plain node: no tsx, no vitest transforms, no module cache shared.
const RUNNER = `
const started = performance.now();
const { handler } = await import(process.env.BUNDLE_URL);
const imported = performance.now();
let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
let firstDone;
for (const [n, event] of JSON.parse(input).entries()) {
  results.push(await handler(event, { awsRequestId: "invoke-" + n, functionName: "strongbox", getRemainingTimeInMillis: () => 10000 }));
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

export function invokeBundle(
  bundle: Bundle,
  env: Record<string, string>,
  events: readonly unknown[],
): Promise<Invocation> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ["--enable-source-maps", "--input-type=module", "-e", RUNNER], {
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
