import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { combineKek, KekShareError, splitKek } from "../../shared/crypto/kek-shares.ts";
import { decodeKek, loadLocalKek } from "../../shared/crypto/kek-source.ts";
import { kekFingerprint } from "../../shared/crypto/local-keyring.ts";
import type { Env } from "../../shared/domain/env.ts";
import { ConfigError } from "../../shared/domain/errors.ts";
import { ProblemFound, UsageError } from "../errors.ts";
import { readSecretInput } from "../input.ts";
import type { Output } from "../output.ts";

/** The KEK to split: piped in with --stdin, or the one the server would load (never generated). */
async function kekToSplit(env: Env, dataDir: string, stdin: boolean): Promise<Uint8Array> {
  try {
    if (stdin) return decodeKek("stdin", (await readSecretInput("the KEK")).trim());
    const devKekPath = join(dataDir, "dev-kek");
    return loadLocalKek(env, existsSync(devKekPath) ? { devKekPath } : {}).active;
  } catch (error) {
    if (error instanceof ConfigError) throw new ProblemFound(error.message);
    throw error;
  }
}

const positive = (name: string, raw: string): number => {
  if (!/^[1-9][0-9]{0,2}$/.test(raw)) throw new UsageError(`${name} must be a whole number from 1 to 255`);
  return Number(raw);
};

export async function splitCommand(
  env: Env,
  out: Output,
  options: { shares: string; threshold: string; outDir?: string; stdin?: boolean; dataDir: string },
): Promise<void> {
  const shares = positive("--shares", options.shares);
  const threshold = positive("--threshold", options.threshold);
  const kek = await kekToSplit(env, options.dataDir, options.stdin === true);
  let parts: Awaited<ReturnType<typeof splitKek>>;
  try {
    parts = await splitKek(kek, shares, threshold);
  } catch (error) {
    if (error instanceof KekShareError) throw new UsageError(error.message);
    throw error;
  }
  const fingerprint = parts[0]?.fingerprint;
  if (options.outDir !== undefined) {
    mkdirSync(options.outDir, { recursive: true, mode: 0o700 });
    const files = parts.map((part) => {
      const file = join(options.outDir as string, `${fingerprint}-share-${part.index}-of-${shares}.txt`);
      // wx: an earlier split's share is never overwritten by a new one.
      writeFileSync(file, `${part.line}\n`, { mode: 0o600, flag: "wx" });
      return file;
    });
    if (out.json) out.write(JSON.stringify({ fingerprint, shares, threshold, files }));
    else out.write(files.map((file) => `wrote ${file}`).join("\n"));
    out.note(
      `KEK ${fingerprint}: ${shares} shares, any ${threshold} rebuild it; store each in a different place`,
    );
    return;
  }
  for (const part of parts) {
    out.note(`share ${part.index} of ${shares} for KEK ${fingerprint} (any ${threshold} rebuild it):`);
    out.write(
      out.json ? JSON.stringify({ fingerprint, index: part.index, threshold, share: part.line }) : part.line,
    );
  }
}

export async function combineCommand(
  out: Output,
  options: { files: readonly string[]; outFile: string },
): Promise<void> {
  const texts =
    options.files.length > 0
      ? options.files.map((file) => {
          try {
            return { text: readFileSync(file, "utf8"), where: file };
          } catch {
            throw new UsageError(`cannot read ${file}`);
          }
        })
      : (await readSecretInput("the shares, one per line"))
          .split("\n")
          .filter((line) => line.trim() !== "")
          .map((text, i) => ({ text, where: `stdin line ${i + 1}` }));
  let combined: Awaited<ReturnType<typeof combineKek>>;
  try {
    combined = await combineKek(texts);
  } catch (error) {
    if (error instanceof KekShareError)
      throw new ProblemFound(
        error.message,
        "give at least the threshold's number of shares, all from one split",
      );
    throw error;
  }
  // The KEK goes to a new file only, never to the terminal: it is then the operator's to place.
  try {
    writeFileSync(options.outFile, `${Buffer.from(combined.kek).toString("base64")}\n`, {
      mode: 0o600,
      flag: "wx",
    });
  } catch {
    throw new UsageError(`cannot create ${options.outFile}: it exists or its folder cannot be written`);
  }
  const result = { fingerprint: combined.fingerprint, file: options.outFile };
  out.write(
    out.json
      ? JSON.stringify(result)
      : `rebuilt KEK ${combined.fingerprint} into ${options.outFile} (mode 0600)`,
  );
}

/** Names a candidate KEK piped on stdin, to match it against the fingerprints doctor reports. */
export async function fingerprintCommand(out: Output): Promise<void> {
  try {
    const kek = decodeKek("stdin", (await readSecretInput("the KEK")).trim());
    out.write(kekFingerprint(kek));
  } catch (error) {
    if (error instanceof ConfigError) throw new ProblemFound(error.message);
    throw error;
  }
}
