import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startStore } from "../../testing/harness.ts";
import { ServerProcess, stopAllServers } from "../../testing/server-process.ts";

/** Start-up through the real server process: every refusal names what failed and the variable to fix. */

const KEK = randomBytes(32).toString("base64");
let root: string;
let store: Awaited<ReturnType<typeof startStore>>;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "strongbox-start-up-"));
  store = await startStore();
});
afterEach(() => stopAllServers());
afterAll(async () => {
  await store.dynamo.close();
  rmSync(root, { recursive: true, force: true });
});

const mode = (path: string) => statSync(path).mode & 0o777;

async function refusal(env: Record<string, string>) {
  const server = ServerProcess.start({ env: { CREDENTIALS_KEK: KEK, ...env } });
  const status = await server.exit();
  expect(status.code).toBe(1);
  expect(server.output).not.toContain(KEK);
  const error = server.logs().find((line) => line.level === "ERROR");
  expect(error, server.output).toBeDefined();
  return error ?? {};
}

describe("start-up", () => {
  it("with DYNAMODB_ENDPOINT and a DATA_DIR that does not exist yet, creates it 0700 and serves", async () => {
    const dataDir = join(root, "fresh", "nested");
    const server = ServerProcess.start({
      env: {
        CREDENTIALS_KEK: KEK,
        DATA_DIR: dataDir,
        DYNAMODB_ENDPOINT: store.dynamo.endpoint,
        // dynalite checks none; the SDK needs some to sign with.
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
      },
    });
    await server.listening();
    expect(mode(dataDir)).toBe(0o700);
    expect(mode(join(dataDir, "admin-token"))).toBe(0o600);
  });

  it("makes an existing DATA_DIR 0700 on every start, not only when it generates the dev KEK", async () => {
    const dataDir = join(root, "open");
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    const server = ServerProcess.start({ env: { CREDENTIALS_KEK: KEK, DATA_DIR: dataDir } });
    await server.listening();
    expect(mode(dataDir)).toBe(0o700);
  });

  it("a DATA_DIR that cannot be created is named, with what to do", async () => {
    const file = join(root, "a-file");
    writeFileSync(file, "");
    const error = await refusal({ DATA_DIR: join(file, "data") });
    expect(error.variable).toBe("DATA_DIR");
    expect(error.message).toContain(join(file, "data"));
    expect(error.message).toMatch(/ENOTDIR.*set DATA_DIR/);
  });

  it("a DYNAMODB_ENDPOINT that does not answer is named, with what to check", async () => {
    const error = await refusal({
      DATA_DIR: join(root, "no-store"),
      DYNAMODB_ENDPOINT: "http://127.0.0.1:9",
    });
    expect(error.variable).toBe("DYNAMODB_ENDPOINT");
    expect(error.message).toContain("http://127.0.0.1:9");
    expect(error.message).toMatch(/check that the store runs there/);
  });

  it("a non-loopback HOST is refused without TLS, naming HOST", async () => {
    const error = await refusal({ DATA_DIR: join(root, "host"), HOST: "0.0.0.0" });
    expect(error.variable).toBe("HOST");
    expect(error.message).toContain("HOST=0.0.0.0");
    expect(error.message).toContain("ALLOW_PLAINTEXT_HOST=1");
  });
});
