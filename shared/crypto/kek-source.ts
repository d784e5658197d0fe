import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Env } from "../domain/env.ts";
import { ConfigError } from "../domain/errors.ts";

export const KEK_BYTES = 32;
const HOW_TO_MAKE_ONE = "generate one with: openssl rand -base64 32";

/** Preferred name first; the aliases are the names other runbooks already use for the same key. */
export const ACTIVE_KEK_VARIABLES = ["CREDENTIALS_KEK", "TENANT_ENCRYPTION_KEY", "LOCAL_KEK_BASE64"] as const;
export const PREVIOUS_KEK_VARIABLES = ["CREDENTIALS_KEK_PREVIOUS", "LOCAL_KEK_BASE64_OLD"] as const;

export interface LocalKekMaterial {
  readonly active: Uint8Array;
  /** Where the active KEK came from, e.g. `CREDENTIALS_KEK_FILE` or `.data/dev-kek`. */
  readonly activeSource: string;
  /** Earlier KEKs, kept for unwrapping only. */
  readonly previous: readonly Uint8Array[];
  readonly devMode: boolean;
}

interface RawSetting {
  readonly variable: string;
  readonly value: string;
}

function readSetting(env: Env, name: string): RawSetting | undefined {
  const direct = env[name];
  const file = env[`${name}_FILE`];
  if (direct !== undefined && direct !== "" && file !== undefined && file !== "") {
    throw new ConfigError(name, `${name} and ${name}_FILE are both set; set only one of them`);
  }
  if (file !== undefined && file !== "") {
    try {
      return { variable: `${name}_FILE`, value: readFileSync(file, "utf8").trim() };
    } catch {
      throw new ConfigError(`${name}_FILE`, `${name}_FILE points at ${file}, which cannot be read`);
    }
  }
  if (direct !== undefined && direct !== "") return { variable: name, value: direct.trim() };
  return undefined;
}

/** Strict base64 of exactly 32 bytes; anything else is refused with the variable's name. */
export function decodeKek(variable: string, value: string): Uint8Array {
  const canonical = /^[A-Za-z0-9+/]{43}=$/.test(value);
  const bytes = canonical ? Buffer.from(value, "base64") : undefined;
  if (bytes === undefined || bytes.length !== KEK_BYTES) {
    throw new ConfigError(
      variable,
      `${variable} must be base64 of exactly ${KEK_BYTES} bytes (44 characters ending in '='); ${HOW_TO_MAKE_ONE}`,
    );
  }
  return new Uint8Array(bytes);
}

function readActive(env: Env): RawSetting | undefined {
  const found = ACTIVE_KEK_VARIABLES.map((name) => readSetting(env, name)).filter(
    (setting): setting is RawSetting => setting !== undefined,
  );
  const [first, ...others] = found;
  const conflicting = others.find((other) => other.value !== first?.value);
  if (first !== undefined && conflicting !== undefined) {
    throw new ConfigError(
      conflicting.variable,
      `${first.variable} and ${conflicting.variable} hold different keys; set only ${ACTIVE_KEK_VARIABLES[0]}`,
    );
  }
  return first;
}

function readPrevious(env: Env): Uint8Array[] {
  const keys: Uint8Array[] = [];
  for (const name of PREVIOUS_KEK_VARIABLES) {
    const setting = readSetting(env, name);
    if (setting === undefined) continue;
    const parts = setting.value
      .split(",")
      .map((part) => part.trim())
      .filter((part) => part !== "");
    for (const part of parts) keys.push(decodeKek(setting.variable, part));
  }
  return keys;
}

export interface LoadKekOptions {
  /** Where a development KEK is created when none is configured outside production. */
  readonly devKekPath?: string;
}

/**
 * Reads the local KEK from the environment, failing closed. Outside production, and only when a dev
 * path is offered, a missing KEK is replaced by a generated one kept at that path (mode 0600).
 */
export function loadLocalKek(env: Env, options: LoadKekOptions = {}): LocalKekMaterial {
  const previous = readPrevious(env);
  const setting = readActive(env);
  if (setting !== undefined) {
    return {
      active: decodeKek(setting.variable, setting.value),
      activeSource: setting.variable,
      previous,
      devMode: false,
    };
  }
  const production = env.NODE_ENV === "production";
  if (production || options.devKekPath === undefined) {
    throw new ConfigError(
      ACTIVE_KEK_VARIABLES[0],
      `${ACTIVE_KEK_VARIABLES[0]} is not set (nor ${ACTIVE_KEK_VARIABLES.slice(1).join(", ")}, nor their _FILE variants); ` +
        `refusing to start without a KEK. ${HOW_TO_MAKE_ONE}`,
    );
  }
  return {
    active: loadDevKek(options.devKekPath),
    activeSource: options.devKekPath,
    previous,
    devMode: true,
  };
}

function loadDevKek(path: string): Uint8Array {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, `${randomBytes(KEK_BYTES).toString("base64")}\n`, { mode: 0o600, flag: "wx" });
  }
  chmodSync(path, 0o600);
  return decodeKek(path, readFileSync(path, "utf8").trim());
}
