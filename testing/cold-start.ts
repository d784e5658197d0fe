import { spawn } from "node:child_process";
import { pathToFileURL } from "node:url";
import type { Bundle } from "./bundles.ts";

export interface ColdStart {
  /** The process's exit code: 0 when the module loaded, as a Lambda init that succeeded. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Only the init of a bundled function: a fresh Node process imports it, as the Lambda runtime does,
 * and exits. For cold starts that must refuse, whose output (the EMF lines on stdout, the error log on
 * stderr) is what the test reads.
 */
export function coldStart(bundle: Bundle, env: Record<string, string>): Promise<ColdStart> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--input-type=module", "-e", "await import(process.env.BUNDLE_URL);"],
      {
        env: { PATH: process.env.PATH ?? "", ...env, BUNDLE_URL: pathToFileURL(bundle.file).href },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
