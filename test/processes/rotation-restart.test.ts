import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { kekFingerprint } from "../../shared/crypto/local-keyring.ts";
import { openTable } from "../../shared/storage/local-dynamo.ts";
import { pollUntilRewrapDone } from "../../testing/rewrap.ts";
import { asWrittenBeforeTheDirectory } from "../../testing/rotation-fixtures.ts";
import { ServerProcess, stopAllServers } from "../../testing/server-process.ts";

/*
 * KEK rotation as an operator does it, on the real local server (`npm start`) restarted on the same
 * DATA_DIR: new CREDENTIALS_KEK with the old one in CREDENTIALS_KEK_PREVIOUS, re-wrap, old one removed.
 */

const dataDir = mkdtempSync(join(tmpdir(), "strongbox-rotation-"));
const kekA = randomBytes(32);
const kekB = randomBytes(32);
const fpA = kekFingerprint(new Uint8Array(kekA));
const fpB = kekFingerprint(new Uint8Array(kekB));
const SECRETS: Record<string, string[]> = { "openai-api-key": ["sk-1", "sk-2"], "db.password": ["hunter2"] };

afterEach(() => stopAllServers());
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

// Every start uses the bootstrap token the first one wrote: the re-wrap re-keys it with the rest, so
// it outlives the KEK it was issued under and no restart needs STRONGBOX_REISSUE_BOOTSTRAP_TOKEN.
const start = (env: Record<string, string>) =>
  ServerProcess.start({ env: { DATA_DIR: dataDir, ROTATION_INTERVAL_SECONDS: "0", ...env } });
const token = () => readFileSync(join(dataDir, "admin-token"), "utf8").trim();
let firstToken = "";

async function api(url: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token()}`,
      "x-audit-reason": "rotation restart test",
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, json: text === "" ? undefined : JSON.parse(text) };
}

async function readsEverything(url: string) {
  for (const [name, values] of Object.entries(SECRETS)) {
    for (const [index, value] of values.entries()) {
      const got = await api(url, "GET", `/v1/tenants/acme/secrets/${name}?version=${index + 1}`);
      expect(got.json).toMatchObject({ version: index + 1, value });
    }
  }
}

beforeAll(async () => {
  const server = start({ CREDENTIALS_KEK: kekA.toString("base64") });
  const url = await server.listening();
  firstToken = token();
  expect((await api(url, "POST", "/v1/tenants", { tenantId: "acme" })).status).toBe(201);
  for (const [name, values] of Object.entries(SECRETS)) {
    for (const value of values) {
      expect((await api(url, "PUT", `/v1/tenants/acme/secrets/${name}`, { value })).status).toBe(200);
    }
  }
  expect(await server.stop()).toEqual({ code: 0, signal: null });
});

describe("restarting with a new KEK", () => {
  it("before the re-wrap, with the old KEK removed, start-up fails closed naming both fingerprints", async () => {
    const server = start({ CREDENTIALS_KEK: kekB.toString("base64") });
    const status = await server.exit();
    expect(status.code).not.toBe(0);
    expect(server.output).toContain(`DEKs in this table were wrapped by KEK ${fpA}; configured KEKs: ${fpB}`);
    expect(server.output).not.toContain(kekA.toString("base64"));
    expect(server.output).not.toContain(kekB.toString("base64"));
  });

  it("with the old KEK as previous everything reads, /v1/health warns, and the re-wrap clears the warning", async () => {
    const server = start({
      CREDENTIALS_KEK: kekB.toString("base64"),
      CREDENTIALS_KEK_PREVIOUS: kekA.toString("base64"),
    });
    const url = await server.listening();
    await readsEverything(url);
    const before = (await api(url, "GET", "/v1/health")).json;
    expect(before.warnings).toEqual([
      expect.stringContaining(`KEK ${fpA}, which is configured only as a previous key`),
    ]);
    const run = await api(url, "POST", "/v1/kek/rewrap");
    expect(run.status).toBe(202);
    expect(run.json).toMatchObject({ started: true, state: { phase: "rewrap", targetKekId: fpB } });
    // The server's own worker does the re-wrap; GET /v1/kek shows when it is done.
    const keks = await pollUntilRewrapDone(async () => {
      const response = await api(url, "GET", "/v1/kek");
      const text = JSON.stringify(response.json);
      return { status: response.status, headers: new Headers(), text, json: async () => response.json };
    });
    expect(keks.rewrap).toMatchObject({
      phase: "done",
      rewrapped: 1,
      deregistered: [fpA],
      rekey: { itemIntegrityFailures: 0, chainsBroken: [] },
    });
    expect(keks.rewrap?.rekey?.itemsRekeyed).toBeGreaterThanOrEqual(1);
    expect(keks.keks.find((k: { kekId: string }) => k.kekId === fpA)).toMatchObject({
      mayBeRemoved: true,
    });
    expect((await api(url, "GET", "/v1/health")).json.warnings).toEqual([]);
    await readsEverything(url);
    expect(await server.stop()).toEqual({ code: 0, signal: null });
  });

  it("after the re-wrap, with the old KEK removed, the server starts, the first admin token still works, everything reads and every chain verifies", async () => {
    const server = start({ CREDENTIALS_KEK: kekB.toString("base64") });
    const url = await server.listening();
    expect(token()).toBe(firstToken);
    expect(server.output).not.toContain("is not replaced");
    await readsEverything(url);
    const tenant = await api(url, "GET", "/v1/tenants/acme/audit/verify");
    expect(tenant.json).toMatchObject({ scope: "acme", intact: true });
    const system = await api(url, "GET", "/v1/audit/verify");
    expect(system.json).toMatchObject({ intact: true });
    // The stream file still holds records keyed by the old KEK; each was chained before it left.
    expect(server.output).not.toContain("refused by the sequencer");
    expect(server.output).not.toContain("failed its integrity check");
    expect(await server.stop()).toEqual({ code: 0, signal: null });
  });
});

describe("the rotation timer inside npm start", () => {
  it("finishes a DEK sweep on its own every ROTATION_INTERVAL_SECONDS", async () => {
    const server = ServerProcess.start({
      env: {
        DATA_DIR: dataDir,
        CREDENTIALS_KEK: kekB.toString("base64"),
        ROTATION_INTERVAL_SECONDS: "1",
        // The shortest grace period the environment accepts: the sweep retires v1 some 15 s later.
        DEK_RETIRE_GRACE_SECONDS: "10",
      },
    });
    const url = await server.listening();
    expect((await api(url, "POST", "/v1/tenants/acme/rotate-dek")).json).toMatchObject({ dekVersion: 2 });
    let status = (await api(url, "GET", "/v1/tenants/acme/rotation")).json;
    for (let wait = 0; wait < 150 && status.sweep?.phase !== "done"; wait += 1) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      status = (await api(url, "GET", "/v1/tenants/acme/rotation")).json;
    }
    expect(status.sweep).toMatchObject({ phase: "done", retiredVersions: [1] });
    expect(status.itemsByDekVersion).toEqual({ 2: 3 });
    await readsEverything(url);
    expect(server.logs().some((line) => line.message === "rotation run")).toBe(true);
  }, 60_000);
});

describe("npm start on a DATA_DIR written before the tenant directory", () => {
  it("backfills the directory before it serves, so GET /v1/kek counts every tenant", async () => {
    const { table, close } = await openTable({
      region: "us-east-1",
      tableName: "strongbox",
      localPath: join(dataDir, "dynamodb"),
    });
    try {
      await asWrittenBeforeTheDirectory(table, ["acme"]);
    } finally {
      await close();
    }
    const server = start({ CREDENTIALS_KEK: kekB.toString("base64") });
    const url = await server.listening();
    expect(server.logs().some((line) => line.message === "tenant directory backfilled")).toBe(true);
    const keks = await api(url, "GET", "/v1/kek");
    expect(keks.status).toBe(200);
    expect(keks.json.keks).toEqual([expect.objectContaining({ kekId: fpB, dataKeys: 1 })]);
    expect(await server.stop()).toEqual({ code: 0, signal: null });

    // Recorded on the registry item, so the next start does not scan again.
    const again = start({ CREDENTIALS_KEK: kekB.toString("base64") });
    await again.listening();
    expect(again.logs().some((line) => line.message === "tenant directory backfilled")).toBe(false);
    expect(await again.stop()).toEqual({ code: 0, signal: null });
  }, 60_000);
});
