import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { kekFingerprint } from "../../shared/crypto/local-keyring.ts";
import { type LogLine, ServerProcess, stopAllServers } from "../../testing/server-process.ts";

/**
 * The real local server (`node --import tsx local/server.ts`) as a child process, with dynalite
 * persisting under a temporary DATA_DIR: what `npm start` does, minus the fixed port.
 */

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "strongbox-server-"));
  tempDirs.push(dir);
  return dir;
}

function newKek(): { bytes: Uint8Array; base64: string; hex: string } {
  const bytes = new Uint8Array(randomBytes(32));
  return { bytes, base64: Buffer.from(bytes).toString("base64"), hex: Buffer.from(bytes).toString("hex") };
}

const mode = (path: string) => statSync(path).mode & 0o777;

afterEach(() => stopAllServers());
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

async function api(
  url: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: any }> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      "x-audit-reason": "server-process test",
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, json: text === "" ? undefined : JSON.parse(text) };
}

/** Every (tenant, secret, version) written before the restarts, with its value. */
const written: { tenant: string; name: string; version: number; value: string }[] = [];
const SECRETS: Record<string, Record<string, string[]>> = {
  acme: { "openai-api-key": ["sk-one", "sk-two", "sk-three ä✓"], "db.password": ["hunter2"] },
  globex: { "stripe-key": ["rk_a", "rk_b"] },
};

async function readsEverythingBack(url: string, token: string): Promise<void> {
  for (const expected of written) {
    const base = `/v1/tenants/${expected.tenant}/secrets/${expected.name}`;
    const got = await api(url, token, "GET", `${base}?version=${expected.version}`);
    expect(got.status, `${base} v${expected.version}`).toBe(200);
    expect(got.json).toMatchObject({ name: expected.name, version: expected.version, value: expected.value });
  }
  for (const [tenant, names] of Object.entries(SECRETS)) {
    for (const [name, values] of Object.entries(names)) {
      const current = await api(url, token, "GET", `/v1/tenants/${tenant}/secrets/${name}`);
      expect(current.json).toMatchObject({ version: values.length, value: values.at(-1) });
    }
  }
}

describe("restarting the server on the same DATA_DIR", () => {
  const kekA = newKek();
  const kekB = newKek();
  let dataDir: string;

  beforeAll(async () => {
    dataDir = tempDir();
    const server = ServerProcess.start({ env: { DATA_DIR: dataDir, CREDENTIALS_KEK: kekA.base64 } });
    const url = await server.listening();
    const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    for (const [tenant, names] of Object.entries(SECRETS)) {
      expect((await api(url, token, "POST", "/v1/tenants", { tenantId: tenant })).status).toBe(201);
      for (const [name, values] of Object.entries(names)) {
        for (const value of values) {
          const put = await api(url, token, "PUT", `/v1/tenants/${tenant}/secrets/${name}`, { value });
          expect(put.status).toBe(200);
          written.push({ tenant, name, version: put.json.version, value });
        }
      }
    }
    expect(written).toHaveLength(6);
    expect(await server.stop()).toEqual({ code: 0, signal: null });
  });

  it("with the same KEK reads every secret and every version back with the same values", async () => {
    const server = ServerProcess.start({ env: { DATA_DIR: dataDir, CREDENTIALS_KEK: kekA.base64 } });
    const url = await server.listening();
    // The bootstrap token from the first start is still valid, so the file is reused, not rewritten.
    const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    await readsEverythingBack(url, token);
    // Past Node's 16 KiB header limit the server itself answers, still in the JSON error shape.
    const huge = await fetch(`${url}/v1/tenants/acme/secrets`, {
      headers: { "x-audit-reason": "r".repeat(20_000) },
    });
    expect(huge.status).toBe(431);
    expect(await huge.json()).toEqual({
      error: { code: "headers_too_large", message: "request headers are too large" },
    });
    expect(await server.stop()).toEqual({ code: 0, signal: null });
  });

  it("with a different KEK fails closed, naming both fingerprints and neither key", async () => {
    const server = ServerProcess.start({ env: { DATA_DIR: dataDir, CREDENTIALS_KEK: kekB.base64 } });
    const status = await server.exit();
    expect(status.code).not.toBe(0);
    expect(status.code).not.toBeNull();
    expect(server.output).toContain(
      `DEKs in this table were wrapped by KEK ${kekFingerprint(kekA.bytes)}; configured KEKs: ${kekFingerprint(kekB.bytes)}`,
    );
    expect(server.logs().some((line) => line.message === "strongbox listening")).toBe(false);
    for (const secret of [kekA.base64, kekA.hex, kekB.base64, kekB.hex]) {
      expect(server.output).not.toContain(secret);
    }
  });

  it("with the new KEK active and the old one in CREDENTIALS_KEK_PREVIOUS starts and reads everything", async () => {
    const server = ServerProcess.start({
      env: { DATA_DIR: dataDir, CREDENTIALS_KEK: kekB.base64, CREDENTIALS_KEK_PREVIOUS: kekA.base64 },
    });
    const url = await server.listening();
    const listening = server.logs().find((line) => line.message === "strongbox listening");
    expect(listening?.kekId).toBe(kekFingerprint(kekB.bytes));
    const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    await readsEverythingBack(url, token);
    expect(await server.stop()).toEqual({ code: 0, signal: null });
  });
});

describe("start-up refuses a bad KEK configuration", () => {
  it("a malformed CREDENTIALS_KEK or LOCAL_KEK_BASE64_FILE exits non-zero naming the variable, not the value", async () => {
    const dir = tempDir();
    const badDirect = Buffer.from(randomBytes(31)).toString("base64");
    const badInFile = randomBytes(32).toString("hex");
    const kekFile = join(dir, "kek");
    writeFileSync(kekFile, `${badInFile}\n`);
    const cases = [
      { variable: "CREDENTIALS_KEK", bad: badDirect, env: { CREDENTIALS_KEK: badDirect } },
      { variable: "LOCAL_KEK_BASE64_FILE", bad: badInFile, env: { LOCAL_KEK_BASE64_FILE: kekFile } },
    ];
    // Independent processes, so run them side by side.
    const servers = cases.map((c) =>
      ServerProcess.start({ env: { DATA_DIR: join(dir, c.variable), ...c.env } }),
    );
    for (const [index, server] of servers.entries()) {
      const c = cases[index];
      if (c === undefined) throw new Error("unreachable");
      const status = await server.exit();
      expect(status.code, c.variable).not.toBe(0);
      expect(status.code, c.variable).not.toBeNull();
      const error = server.logs().find((line) => line.level === "ERROR");
      expect(error?.variable).toBe(c.variable);
      expect(error?.message).toContain(c.variable);
      expect(server.output).not.toContain(c.bad);
    }
  });

  it("NODE_ENV=production with no KEK exits non-zero naming CREDENTIALS_KEK and creates no .data/dev-kek", async () => {
    // No DATA_DIR, so the server falls back to `.data` under its working directory: a fresh temp dir.
    const cwd = tempDir();
    const server = ServerProcess.start({ cwd, env: { NODE_ENV: "production" } });
    const status = await server.exit();
    expect(status.code).not.toBe(0);
    expect(status.code).not.toBeNull();
    const error = server.logs().find((line) => line.level === "ERROR");
    expect(error?.variable).toBe("CREDENTIALS_KEK");
    expect(error?.message).toContain("CREDENTIALS_KEK");
    expect(existsSync(join(cwd, ".data", "dev-kek"))).toBe(false);
  });
});

describe("development mode: no KEK outside production", () => {
  it("creates DATA_DIR/dev-kek (0600), warns on every start, and writes the bootstrap token 0600 without logging it", async () => {
    const dataDir = tempDir();
    const devKek = join(dataDir, "dev-kek");
    const tokenPath = join(dataDir, "admin-token");
    const starts: { logs: LogLine[]; output: string }[] = [];
    for (let start = 0; start < 2; start += 1) {
      const server = ServerProcess.start({ env: { DATA_DIR: dataDir } });
      const url = await server.listening();
      // The token works, so it is the real one, and it is the value that must never be printed.
      const token = readFileSync(tokenPath, "utf8").trim();
      expect(token).toMatch(/^sbx_/);
      expect((await api(url, token, "GET", "/v1/audit")).status).toBe(200);
      expect(await server.stop()).toEqual({ code: 0, signal: null });
      expect(server.output).not.toContain(token);
      starts.push({ logs: server.logs(), output: server.output });
    }

    expect(mode(devKek)).toBe(0o600);
    expect(mode(tokenPath)).toBe(0o600);
    const devKekValue = readFileSync(devKek, "utf8").trim();
    const fingerprint = kekFingerprint(new Uint8Array(Buffer.from(devKekValue, "base64")));
    for (const { logs, output } of starts) {
      const warning = logs.find((line) => line.level === "WARN");
      expect(warning?.path).toBe(devKek);
      expect(warning?.kekId).toBe(fingerprint);
      expect(output).not.toContain(devKekValue);
      // The same dev KEK on both starts: the second one reused the file rather than replacing it.
      expect(logs.find((line) => line.message === "strongbox listening")?.kekId).toBe(fingerprint);
    }
    const first = starts[0];
    expect(first?.logs.some((line) => line.path === tokenPath && line.level === "INFO")).toBe(true);
  });
});

describe("the local bootstrap token after a revocation", () => {
  it("a restart does not mint a new one; STRONGBOX_REISSUE_BOOTSTRAP_TOKEN=true does, and each issuance is on record", async () => {
    const dataDir = tempDir();
    const kek = newKek();
    const tokenPath = join(dataDir, "admin-token");
    const env = { DATA_DIR: dataDir, CREDENTIALS_KEK: kek.base64 };

    const first = ServerProcess.start({ env });
    let url = await first.listening();
    const original = readFileSync(tokenPath, "utf8").trim();
    const id = /^sbx_([a-z2-7]{26})_/.exec(original)?.[1] ?? "";
    expect((await api(url, original, "DELETE", `/v1/tokens/${id}`)).status).toBe(204);
    expect(await first.stop()).toEqual({ code: 0, signal: null });

    const second = ServerProcess.start({ env });
    url = await second.listening();
    expect(readFileSync(tokenPath, "utf8").trim()).toBe(original);
    expect((await api(url, original, "GET", "/v1/audit")).status).toBe(401);
    const warning = second.logs().find((line) => line.level === "WARN" && line.tokenId === id);
    expect(String(warning?.message)).toContain("STRONGBOX_REISSUE_BOOTSTRAP_TOKEN");
    expect(await second.stop()).toEqual({ code: 0, signal: null });

    const third = ServerProcess.start({ env: { ...env, STRONGBOX_REISSUE_BOOTSTRAP_TOKEN: "true" } });
    url = await third.listening();
    const reissued = readFileSync(tokenPath, "utf8").trim();
    expect(reissued).not.toBe(original);
    const trail = await api(url, reissued, "GET", "/v1/audit?limit=999&action=token.create&outcome=success");
    expect(trail.status).toBe(200);
    const details = trail.json.events.map((e: { detail: string }) => e.detail);
    expect(details).toHaveLength(2);
    expect(details.join("\n")).toContain(`previous ${id}`);
    expect(await third.stop()).toEqual({ code: 0, signal: null });
    expect(third.output).not.toContain(reissued);
  });
});
