import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTable } from "../../shared/storage/local-dynamo.ts";
import { runCli } from "../../testing/cli-process.ts";
import { deleteRawItem } from "../../testing/faults.ts";
import { ServerProcess, stopAllServers } from "../../testing/server-process.ts";

// The real `strongbox` bin as a process, on a `.data/` the real `npm start` server wrote and then
// released (the offline commands open the store themselves, as an operator does before start-up).

const CANARY = `cli-canary-${randomBytes(8).toString("hex")}`;
let dataDir: string;
let devKek: string;
const scratch: string[] = [];

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}

const cli = (args: string[], env: Record<string, string | undefined> = {}, stdin?: string) =>
  runCli(args, { env: { DATA_DIR: dataDir, ...env }, ...(stdin === undefined ? {} : { stdin }) });

const newKek = () => randomBytes(32).toString("base64");

beforeAll(async () => {
  dataDir = tempDir("strongbox-cli-");
  const server = ServerProcess.start({ env: { DATA_DIR: dataDir, ROTATION_INTERVAL_SECONDS: "0" } });
  const url = await server.listening();
  const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
  const call = (method: string, path: string, body: unknown) =>
    fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  expect((await call("POST", "/v1/tenants", { tenantId: "acme" })).status).toBe(201);
  expect((await call("POST", "/v1/tenants", { tenantId: "globex" })).status).toBe(201);
  for (const value of [CANARY, `${CANARY}-2`]) {
    expect((await call("PUT", "/v1/tenants/acme/secrets/api-key", { value })).status).toBe(200);
  }
  expect((await call("PUT", "/v1/tenants/globex/secrets/db", { value: `${CANARY}-g` })).status).toBe(200);
  await server.stop();
  devKek = readFileSync(join(dataDir, "dev-kek"), "utf8").trim();
}, 60_000);

afterAll(async () => {
  await stopAllServers();
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

/** Nothing the CLI prints may hold the KEK or a value. */
function expectNoSecrets(result: { stdout: string; stderr: string }) {
  for (const text of [result.stdout, result.stderr]) {
    expect(text).not.toContain(devKek);
    expect(text).not.toContain(CANARY);
  }
}

describe("strongbox doctor, offline", () => {
  it("reports a healthy store with exit 0: the KEK's variable and fingerprint, coverage, the tenant's DEKs, intact chains", async () => {
    const result = await cli(["--json", "doctor", "--tenant", "acme"]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as {
      healthy: boolean;
      findings: { check: string; status: string; detail: string }[];
    };
    expect(report.healthy).toBe(true);
    const byCheck = new Map(report.findings.map((f) => [f.check, f]));
    expect(byCheck.get("KEK")?.detail).toMatch(/dev-kek holds KEK kek-[0-9a-f]{16}/);
    expect(byCheck.get("KEK coverage")?.status).toBe("ok");
    expect(byCheck.get("tenant acme DEK v1")?.detail).toContain("2 ciphertexts; unwraps");
    expect(byCheck.get("audit acme")?.detail).toMatch(/intact up to sequence [1-9]/);
    expectNoSecrets(result);
  });

  it("names the missing KEK's variables and exits 1 when no KEK is configured", async () => {
    const bare = tempDir("strongbox-cli-nokek-");
    cpSync(join(dataDir, "dynamodb"), join(bare, "dynamodb"), { recursive: true });
    const result = await runCli(["doctor"], { env: { DATA_DIR: bare } });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("no KEK is configured: none of CREDENTIALS_KEK");
    expect(result.stdout).toContain("fix: set CREDENTIALS_KEK");
  });

  it("reports a wrong KEK by fingerprint, with the fix, and does not call the chains forged", async () => {
    const result = await cli(["doctor", "--tenant", "acme"], { CREDENTIALS_KEK: newKek() });
    expect(result.code).toBe(1);
    const wanted = /KEK (kek-[0-9a-f]{16}), which is not configured/.exec(result.stdout)?.[1];
    const fingerprint = await cli(["kek", "fingerprint"], {}, `${devKek}\n`);
    expect(wanted).toBe(fingerprint.stdout.trim());
    expect(result.stdout).toMatch(/tenant acme DEK v1: .*does not unwrap/);
    expect(result.stdout).toContain("chains not checked");
    expect(result.stdout).not.toContain("forged");
    expectNoSecrets(result);
  });

  it("names the variable of a malformed KEK and exits 1", async () => {
    const result = await cli(["doctor"], { CREDENTIALS_KEK: "not-a-key" });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("CREDENTIALS_KEK is not usable");
    expect(result.stdout).not.toContain("not-a-key");
  });

  it("--compare-env tells apart two environments' KEKs by fingerprint only", async () => {
    const dir = tempDir("strongbox-cli-env-");
    const same = join(dir, "same.env");
    const other = join(dir, "runner.env");
    writeFileSync(same, `CREDENTIALS_KEK=${devKek}\n`);
    const otherKek = newKek();
    writeFileSync(other, `export CREDENTIALS_KEK="${otherKek}"\n`);
    const ok = await cli(["doctor", "--compare-env", same], { CREDENTIALS_KEK: devKek });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("uses the same active KEK");
    const differ = await cli(["doctor", "--compare-env", other], { CREDENTIALS_KEK: devKek });
    expect(differ.code).toBe(1);
    expect(differ.stdout).toMatch(/this environment's active KEK is kek-\w+; .*runner\.env's is kek-\w+/);
    expect(differ.stdout).not.toContain(otherKek);
    expectNoSecrets(differ);
  });

  it("is a usage error (exit 2) to name an unknown command or option", async () => {
    expect((await cli(["doctr"])).code).toBe(2);
    expect((await cli(["doctor", "--tenat", "x"])).code).toBe(2);
  });
});

describe("strongbox kek split and combine", () => {
  it("round-trips through any threshold of shares, each naming the fingerprint and its index, and never prints the KEK", async () => {
    const dir = tempDir("strongbox-cli-shares-");
    const split = await cli([
      "kek",
      "split",
      "--shares",
      "5",
      "--threshold",
      "3",
      "--out-dir",
      join(dir, "s"),
    ]);
    expect(split.code).toBe(0);
    expectNoSecrets(split);
    const files = readdirSync(join(dir, "s")).sort();
    expect(files).toHaveLength(5);
    for (const [i, file] of files.entries()) {
      expect(statSync(join(dir, "s", file)).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(dir, "s", file), "utf8")).toMatch(
        new RegExp(`^strongbox-kek-share/v1:kek-[0-9a-f]{16}:${i + 1}:3:`),
      );
    }
    const pick = (...n: number[]) => n.map((k) => join(dir, "s", files[k - 1] as string));
    const out = join(dir, "kek");
    const combined = await cli(["kek", "combine", ...pick(5, 2, 4), "--out", out]);
    expect(combined.code).toBe(0);
    expectNoSecrets(combined);
    expect(readFileSync(out, "utf8").trim()).toBe(devKek);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    // Shares on stdin, one per line, as `strongbox kek split` printed them.
    const lines = pick(1, 3, 5)
      .map((file) => readFileSync(file, "utf8"))
      .join("");
    const fromStdin = await cli(["kek", "combine", "--out", join(dir, "kek2")], {}, lines);
    expect(fromStdin.code).toBe(0);
    expect(readFileSync(join(dir, "kek2"), "utf8").trim()).toBe(devKek);
  });

  it("refuses too few shares, a repeated share, shares of two KEKs and a damaged share, each with exit 1", async () => {
    const dir = tempDir("strongbox-cli-refuse-");
    await cli(["kek", "split", "--shares", "3", "--threshold", "2", "--out-dir", join(dir, "a")]);
    const other = await cli(
      ["kek", "split", "--shares", "3", "--threshold", "2", "--stdin"],
      {},
      `${newKek()}\n`,
    );
    const a = readdirSync(join(dir, "a"))
      .sort()
      .map((file) => readFileSync(join(dir, "a", file), "utf8").trim());
    const b = other.stdout.trim().split("\n");
    const refuse = async (lines: string[], why: RegExp) => {
      const result = await cli(
        ["kek", "combine", "--out", join(dir, `k-${Math.random()}`)],
        {},
        lines.join("\n"),
      );
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(why);
    };
    await refuse([a[0] as string], /1 shares given; this split needs 2/);
    await refuse([a[0] as string, a[0] as string], /the same share was given twice/);
    await refuse([a[0] as string, b[1] as string], /shares of different KEKs/);
    const share = a[1] as string;
    const body = share.slice(share.lastIndexOf(":") + 1);
    const bytes = Buffer.from(body, "base64");
    bytes[0] = (bytes[0] as number) ^ 1;
    const damaged = `${share.slice(0, share.lastIndexOf(":") + 1)}${bytes.toString("base64")}`;
    await refuse([a[0] as string, damaged], /combine to kek-\w+, not kek-\w+/);
  });

  it("refuses a threshold above the share count as a usage error", async () => {
    const result = await cli(["kek", "split", "--shares", "2", "--threshold", "3"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--shares must be at least the threshold");
  });
});

describe("strongbox dr-drill", () => {
  it("restores a copy, opens every ciphertext of the sampled tenants and verifies their chains", async () => {
    const before = readdirSync(tmpdir()).filter((name) => name.startsWith("strongbox-drill-"));
    const result = await cli(["--json", "dr-drill", "--tenants", "5"]);
    expect(result.code).toBe(0);
    expectNoSecrets(result);
    const report = JSON.parse(result.stdout) as {
      ok: boolean;
      tenants: {
        tenantId: string;
        secrets: number;
        ciphertexts: number;
        failures: unknown[];
        chainIntact: boolean;
      }[];
    };
    expect(report.ok).toBe(true);
    expect(report.tenants.map((t) => t.tenantId).sort()).toEqual(["acme", "globex"]);
    expect(report.tenants.find((t) => t.tenantId === "acme")).toMatchObject({
      secrets: 1,
      ciphertexts: 2,
      failures: [],
    });
    // The copy is removed afterwards.
    expect(readdirSync(tmpdir()).filter((name) => name.startsWith("strongbox-drill-"))).toEqual(before);
  });

  it("fails (exit 1) when the configured KEK cannot open the restored data", async () => {
    const result = await cli(["dr-drill", "--tenants", "1"], { CREDENTIALS_KEK: newKek() });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/FAILED (acme|globex)\//);
    expectNoSecrets(result);
  });
});

describe("strongbox audit verify, offline", () => {
  it("prints each chain intact and exits 0", async () => {
    const result = await cli(["audit", "verify", "acme", "globex"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^acme: intact up to sequence \d+ \(\d+ records in [0-9.]+ s\)\nglobex: intact up to sequence \d+ /m,
    );
  });

  it("reports a chain deleted whole from the table as truncated, from the anchors alone, and exits 1", async () => {
    const copy = tempDir("strongbox-cli-cut-");
    cpSync(dataDir, copy, { recursive: true });
    const store = await openTable({
      region: "us-east-1",
      tableName: "strongbox",
      localPath: join(copy, "dynamodb"),
    });
    try {
      const blocks = await store.table.doc.send(
        new QueryCommand({
          TableName: store.table.name,
          KeyConditionExpression: "pk = :pk AND begins_with(sk, :seq)",
          ExpressionAttributeValues: { ":pk": "AUDIT#acme", ":seq": "SEQ#" },
        }),
      );
      expect(blocks.Items?.length).toBeGreaterThan(0);
      for (const { pk, sk } of blocks.Items ?? []) await deleteRawItem(store.table, { pk, sk });
    } finally {
      await store.close();
    }
    // No scope named and no head given: the anchor file names acme and holds its last head.
    const result = await cli(["audit", "verify"], { DATA_DIR: copy });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^acme: broken at sequence 1: the chain ends before, or differs at, a head/m,
    );
    expect(result.stdout).toMatch(/^globex: intact up to sequence \d+ /m);
  });
});
