import { readFileSync } from "node:fs";
import { UsageError } from "./errors.ts";

/**
 * Secrets come from stdin or a file, never from argv, where `ps` and shell history would keep them.
 * A terminal on stdin means nothing was piped: refused, rather than waiting on a prompt that echoes.
 */
export async function readSecretInput(what: string, fromFile?: string): Promise<string> {
  if (fromFile !== undefined) {
    try {
      return readFileSync(fromFile, "utf8");
    } catch {
      throw new UsageError(`cannot read ${fromFile}`);
    }
  }
  if (process.stdin.isTTY) {
    throw new UsageError(`pipe ${what} on stdin or give --from-file; it is never taken as an argument`);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
