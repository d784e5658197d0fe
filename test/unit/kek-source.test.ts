import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { decodeKek, loadLocalKek } from "../../shared/crypto/kek-source.ts";
import type { DataKeyContext } from "../../shared/crypto/keyring.ts";
import { kekFingerprint, LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import type { Env } from "../../shared/domain/env.ts";
import { ConfigError, DecryptError, KekMismatchError } from "../../shared/domain/errors.ts";

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "strongbox-kek-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function newKek(): { bytes: Uint8Array; base64: string } {
  const bytes = new Uint8Array(randomBytes(32));
  return { bytes, base64: Buffer.from(bytes).toString("base64") };
}

/** Runs `action`, which must throw a ConfigError, and returns it. */
function configError(action: () => unknown): ConfigError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError, but nothing was thrown");
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

const ACTIVE = ["CREDENTIALS_KEK", "TENANT_ENCRYPTION_KEY", "LOCAL_KEK_BASE64"] as const;

describe("loadLocalKek: the active KEK", () => {
  it.each(ACTIVE)("%s set to base64 of 32 bytes is accepted as the active KEK", (variable) => {
    const kek = newKek();
    const material = loadLocalKek({ [variable]: kek.base64 });
    expect(material.active).toEqual(kek.bytes);
    expect(material.activeSource).toBe(variable);
    expect(material.previous).toEqual([]);
    expect(material.devMode).toBe(false);
  });

  it.each(ACTIVE)("NAME_FILE is read from the file, surrounding whitespace ignored: %s", (variable) => {
    const kek = newKek();
    const file = join(tempDir(), "kek");
    writeFileSync(file, `${kek.base64}\n`);
    const material = loadLocalKek({ [`${variable}_FILE`]: file });
    expect(material.active).toEqual(kek.bytes);
    expect(material.activeSource).toBe(`${variable}_FILE`);
    expect(material.devMode).toBe(false);
  });

  it.each(ACTIVE)("NAME and NAME_FILE both set is refused naming NAME: %s", (variable) => {
    const kek = newKek();
    const file = join(tempDir(), "kek");
    writeFileSync(file, kek.base64);
    const error = configError(() => loadLocalKek({ [variable]: kek.base64, [`${variable}_FILE`]: file }));
    expect(error.variable).toBe(variable);
    expect(error.message).toContain(variable);
    expect(error.message).toContain(`${variable}_FILE`);
    expect(error.message).not.toContain(kek.base64);
  });

  it("a _FILE that cannot be read is refused naming the _FILE variable", () => {
    const missing = join(tempDir(), "does-not-exist");
    const error = configError(() => loadLocalKek({ CREDENTIALS_KEK_FILE: missing }));
    expect(error.variable).toBe("CREDENTIALS_KEK_FILE");
    expect(error.message).toContain("CREDENTIALS_KEK_FILE");
  });

  it("two aliases holding different keys are refused naming both, without either key", () => {
    const a = newKek();
    const b = newKek();
    const error = configError(() => loadLocalKek({ CREDENTIALS_KEK: a.base64, LOCAL_KEK_BASE64: b.base64 }));
    expect(error.variable).toBe("LOCAL_KEK_BASE64");
    expect(error.message).toContain("CREDENTIALS_KEK");
    expect(error.message).toContain("LOCAL_KEK_BASE64");
    expect(error.message).not.toContain(a.base64);
    expect(error.message).not.toContain(b.base64);
  });

  it("an alias given through its _FILE variant with a different key than another alias is refused", () => {
    const a = newKek();
    const b = newKek();
    const file = join(tempDir(), "kek");
    writeFileSync(file, b.base64);
    const error = configError(() =>
      loadLocalKek({ TENANT_ENCRYPTION_KEY: a.base64, LOCAL_KEK_BASE64_FILE: file }),
    );
    expect(error.variable).toBe("LOCAL_KEK_BASE64_FILE");
  });

  it("two aliases holding the same key are accepted, the preferred name reported as the source", () => {
    const kek = newKek();
    const material = loadLocalKek({ TENANT_ENCRYPTION_KEY: kek.base64, CREDENTIALS_KEK: kek.base64 });
    expect(material.active).toEqual(kek.bytes);
    expect(material.activeSource).toBe("CREDENTIALS_KEK");
  });
});

describe("malformed KEK values are refused with a ConfigError naming the variable, never echoing the value", () => {
  // 0xfb bytes encode to a base64 string full of '+' and '/', so the url-safe alphabet differs from it.
  const plusSlash = Buffer.alloc(32, 0xfb).toString("base64");
  const valid = newKek().base64;
  const malformed: [string, string][] = [
    ["too short (base64 of 31 bytes)", randomBytes(31).toString("base64")],
    ["too short (base64 of 16 bytes)", randomBytes(16).toString("base64")],
    ["too long (base64 of 33 bytes)", randomBytes(33).toString("base64")],
    ["too long (base64 of 48 bytes)", randomBytes(48).toString("base64")],
    ["32 bytes that are not base64", "correct-horse-battery-staple!!!!"],
    ["44 characters with a character outside base64", `${valid.slice(0, 20)}!${valid.slice(21)}`],
    ["base64url alphabet", plusSlash.replaceAll("+", "-").replaceAll("/", "_")],
    ["base64 without padding", valid.slice(0, 43)],
    ["whitespace in the middle", `${valid.slice(0, 22)} ${valid.slice(22)}`],
    ["hex of 32 bytes", randomBytes(32).toString("hex")],
  ];

  it("the base64url fixture really differs from standard base64", () => {
    expect(plusSlash).toMatch(/[+/]/);
    expect(decodeKek("X", plusSlash)).toHaveLength(32);
  });

  it.each(malformed)("%s is refused by decodeKek", (_, value) => {
    const error = configError(() => decodeKek("CREDENTIALS_KEK", value));
    expect(error.variable).toBe("CREDENTIALS_KEK");
    expect(error.message).toContain("CREDENTIALS_KEK");
    expect(error.message).toContain("openssl rand -base64 32");
    expect(error.message).not.toContain(value);
  });

  it.each(malformed)("%s in LOCAL_KEK_BASE64 is refused by loadLocalKek", (_, value) => {
    const error = configError(() => loadLocalKek({ LOCAL_KEK_BASE64: value }));
    expect(error.variable).toBe("LOCAL_KEK_BASE64");
    expect(error.message).toContain("LOCAL_KEK_BASE64");
    expect(error.message).toContain("openssl rand -base64 32");
    expect(error.message).not.toContain(value);
  });

  it.each(malformed)("%s in TENANT_ENCRYPTION_KEY_FILE is refused naming the _FILE variable", (_, value) => {
    const file = join(tempDir(), "kek");
    writeFileSync(file, `${value}\n`);
    const error = configError(() => loadLocalKek({ TENANT_ENCRYPTION_KEY_FILE: file }));
    expect(error.variable).toBe("TENANT_ENCRYPTION_KEY_FILE");
    expect(error.message).toContain("TENANT_ENCRYPTION_KEY_FILE");
    expect(error.message).toContain("openssl rand -base64 32");
    expect(error.message).not.toContain(value);
  });

  it("a valid key is decoded to its 32 bytes", () => {
    const kek = newKek();
    expect(decodeKek("CREDENTIALS_KEK", kek.base64)).toEqual(kek.bytes);
  });
});

describe("loadLocalKek: previous KEKs", () => {
  it("CREDENTIALS_KEK_PREVIOUS (comma-separated) and LOCAL_KEK_BASE64_OLD are all kept for unwrapping", () => {
    const active = newKek();
    const [p1, p2, p3] = [newKek(), newKek(), newKek()];
    const material = loadLocalKek({
      CREDENTIALS_KEK: active.base64,
      CREDENTIALS_KEK_PREVIOUS: ` ${p1.base64} , ${p2.base64},`,
      LOCAL_KEK_BASE64_OLD: p3.base64,
    });
    expect(material.active).toEqual(active.bytes);
    expect(material.previous).toEqual([p1.bytes, p2.bytes, p3.bytes]);
  });

  it("CREDENTIALS_KEK_PREVIOUS_FILE is read from the file", () => {
    const previous = newKek();
    const file = join(tempDir(), "previous");
    writeFileSync(file, `${previous.base64}\n`);
    const material = loadLocalKek({ CREDENTIALS_KEK: newKek().base64, CREDENTIALS_KEK_PREVIOUS_FILE: file });
    expect(material.previous).toEqual([previous.bytes]);
  });

  it("a malformed key in CREDENTIALS_KEK_PREVIOUS is refused naming that variable", () => {
    const bad = randomBytes(32).toString("hex");
    const error = configError(() =>
      loadLocalKek({
        CREDENTIALS_KEK: newKek().base64,
        CREDENTIALS_KEK_PREVIOUS: `${newKek().base64},${bad}`,
      }),
    );
    expect(error.variable).toBe("CREDENTIALS_KEK_PREVIOUS");
    expect(error.message).toContain("CREDENTIALS_KEK_PREVIOUS");
    expect(error.message).toContain("openssl rand -base64 32");
    expect(error.message).not.toContain(bad);
  });

  it("a malformed LOCAL_KEK_BASE64_OLD is refused naming that variable", () => {
    const bad = randomBytes(16).toString("base64");
    const error = configError(() =>
      loadLocalKek({ CREDENTIALS_KEK: newKek().base64, LOCAL_KEK_BASE64_OLD: bad }),
    );
    expect(error.variable).toBe("LOCAL_KEK_BASE64_OLD");
    expect(error.message).toContain("LOCAL_KEK_BASE64_OLD");
    expect(error.message).not.toContain(bad);
  });
});

describe("loadLocalKek: no KEK configured", () => {
  it("in production is refused naming CREDENTIALS_KEK even when a dev path is offered, and creates no file", () => {
    const devKekPath = join(tempDir(), "data", "dev-kek");
    const error = configError(() => loadLocalKek({ NODE_ENV: "production" }, { devKekPath }));
    expect(error.variable).toBe("CREDENTIALS_KEK");
    expect(error.message).toContain("CREDENTIALS_KEK");
    expect(error.message).toContain("openssl rand -base64 32");
    expect(existsSync(devKekPath)).toBe(false);
  });

  it("outside production without a dev path is refused naming CREDENTIALS_KEK", () => {
    const error = configError(() => loadLocalKek({}));
    expect(error.variable).toBe("CREDENTIALS_KEK");
    expect(error.message).toContain("openssl rand -base64 32");
  });

  it("empty values count as unset", () => {
    const error = configError(() => loadLocalKek({ CREDENTIALS_KEK: "", LOCAL_KEK_BASE64_FILE: "" }));
    expect(error.variable).toBe("CREDENTIALS_KEK");
  });

  it("outside production with a dev path creates a 0600 dev KEK and reuses the same bytes next time", () => {
    const devKekPath = join(tempDir(), "nested", "data", "dev-kek");
    const env: Env = { NODE_ENV: "development" };
    const first = loadLocalKek(env, { devKekPath });
    expect(first.devMode).toBe(true);
    expect(first.activeSource).toBe(devKekPath);
    expect(first.active).toHaveLength(32);
    expect(statSync(devKekPath).mode & 0o777).toBe(0o600);
    const onDisk = readFileSync(devKekPath, "utf8");

    const second = loadLocalKek({}, { devKekPath });
    expect(second.devMode).toBe(true);
    expect(second.active).toEqual(first.active);
    expect(readFileSync(devKekPath, "utf8")).toBe(onDisk);
  });

  it("a configured KEK wins over the dev path, which is then left alone", () => {
    const devKekPath = join(tempDir(), "dev-kek");
    const kek = newKek();
    const material = loadLocalKek({ CREDENTIALS_KEK: kek.base64 }, { devKekPath });
    expect(material.devMode).toBe(false);
    expect(material.active).toEqual(kek.bytes);
    expect(existsSync(devKekPath)).toBe(false);
  });

  it("a corrupted dev KEK file is refused rather than replaced", () => {
    const devKekPath = join(tempDir(), "dev-kek");
    writeFileSync(devKekPath, "not-a-key\n", { mode: 0o600 });
    const error = configError(() => loadLocalKek({}, { devKekPath }));
    expect(error.variable).toBe(devKekPath);
    expect(error.message).not.toContain("not-a-key");
    expect(readFileSync(devKekPath, "utf8")).toBe("not-a-key\n");
  });
});

describe("LocalKeyring", () => {
  const context: DataKeyContext = { tenantId: "acme", dekVersion: 3 };

  it("fingerprints are stable, distinct per KEK, and do not contain the key", () => {
    const kek = newKek();
    const fingerprint = kekFingerprint(kek.bytes);
    expect(fingerprint).toMatch(/^kek-[0-9a-f]{16}$/);
    expect(kekFingerprint(new Uint8Array(kek.bytes))).toBe(fingerprint);
    expect(kekFingerprint(newKek().bytes)).not.toBe(fingerprint);
    const hex = Buffer.from(kek.bytes).toString("hex");
    expect(hex).not.toContain(fingerprint.slice(4));
    expect(fingerprint).not.toContain(kek.base64.slice(0, 8));
    const keyring = new LocalKeyring({ active: kek.bytes, previous: [] });
    expect(keyring.activeKekId).toBe(fingerprint);
  });

  it("kekIds name the active KEK first, then the previous ones", () => {
    const [a, b, c] = [newKek(), newKek(), newKek()];
    const keyring = new LocalKeyring({ active: a.bytes, previous: [b.bytes, c.bytes] });
    expect(keyring.kekIds).toEqual([a, b, c].map((k) => kekFingerprint(k.bytes)));
  });

  it("a DEK wrapped under a KEK that is now a previous KEK still unwraps", async () => {
    const old = newKek();
    const generated = await new LocalKeyring({ active: old.bytes, previous: [] }).generateDataKey(context);
    expect(generated.wrapped.kekId).toBe(kekFingerprint(old.bytes));
    const rotated = new LocalKeyring({ active: newKek().bytes, previous: [old.bytes] });
    expect(await rotated.unwrap(generated.wrapped, context)).toEqual(generated.plaintext);
  });

  it("a DEK wrapped by an unconfigured KEK fails with KekMismatchError naming both fingerprints", async () => {
    const [a, b] = [newKek(), newKek()];
    const generated = await new LocalKeyring({ active: a.bytes, previous: [] }).generateDataKey(context);
    const error = await rejection(
      new LocalKeyring({ active: b.bytes, previous: [] }).unwrap(generated.wrapped, context),
    );
    expect(error).toBeInstanceOf(KekMismatchError);
    expect((error as Error).message).toBe(
      `tenant acme's DEK v3 was wrapped by KEK ${kekFingerprint(a.bytes)}; configured KEKs: ${kekFingerprint(b.bytes)}`,
    );
  });

  it("a DEK unwrapped under another tenant's or version's context fails with DecryptError", async () => {
    const keyring = new LocalKeyring({ active: newKek().bytes, previous: [] });
    const generated = await keyring.generateDataKey(context);
    expect(
      await rejection(keyring.unwrap(generated.wrapped, { ...context, tenantId: "globex" })),
    ).toBeInstanceOf(DecryptError);
    expect(await rejection(keyring.unwrap(generated.wrapped, { ...context, dekVersion: 4 }))).toBeInstanceOf(
      DecryptError,
    );
  });

  it("a wrapped DEK with a flipped bit fails with DecryptError", async () => {
    const keyring = new LocalKeyring({ active: newKek().bytes, previous: [] });
    const generated = await keyring.generateDataKey(context);
    const ciphertext = new Uint8Array(generated.wrapped.ciphertext);
    ciphertext[ciphertext.length - 1] = (ciphertext.at(-1) ?? 0) ^ 1;
    const error = await rejection(keyring.unwrap({ ...generated.wrapped, ciphertext }, context));
    expect(error).toBeInstanceOf(DecryptError);
  });

  it("rewrap moves a DEK onto the active KEK, so the old KEK is no longer needed", async () => {
    const [old, current] = [newKek(), newKek()];
    const generated = await new LocalKeyring({ active: old.bytes, previous: [] }).generateDataKey(context);
    const rotated = new LocalKeyring({ active: current.bytes, previous: [old.bytes] });
    const rewrapped = await rotated.rewrap(generated.wrapped, context);
    expect(rewrapped.kekId).toBe(kekFingerprint(current.bytes));
    const currentOnly = new LocalKeyring({ active: current.bytes, previous: [] });
    expect(await currentOnly.unwrap(rewrapped, context)).toEqual(generated.plaintext);
  });
});
