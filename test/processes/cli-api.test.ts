import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../testing/cli-process.ts";
import { ServerProcess, stopAllServers } from "../../testing/server-process.ts";

// The real `strongbox` bin as a process against the real `npm start` server, through the typed client.

const CANARY = `cli-api-canary-${randomBytes(8).toString("hex")}`;
let dataDir: string;
let server: ServerProcess;
let url: string;
let tokenFile: string;

const cli = (args: string[], options: { stdin?: string; env?: Record<string, string | undefined> } = {}) =>
  runCli(args, {
    env: { STRONGBOX_URL: url, STRONGBOX_TOKEN_FILE: tokenFile, ...options.env },
    ...(options.stdin === undefined ? {} : { stdin: options.stdin }),
  });

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "strongbox-cli-api-"));
  server = ServerProcess.start({ env: { DATA_DIR: dataDir, ROTATION_INTERVAL_SECONDS: "0" } });
  url = await server.listening();
  tokenFile = join(dataDir, "admin-token");
  expect((await cli(["tenants", "create", "acme"])).code).toBe(0);
}, 60_000);

afterAll(async () => {
  await stopAllServers();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("strongbox against the API", () => {
  it("doctor --url reads /health and the admin routes: exit 0 on a healthy service", async () => {
    const result = await cli(["--json", "doctor", "--tenant", "acme"]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as {
      healthy: boolean;
      findings: { check: string; status: string }[];
    };
    expect(report.healthy).toBe(true);
    expect(report.findings.map((f) => f.check)).toEqual(
      expect.arrayContaining(["service", "KEK", "store", "KEK coverage", "tenant acme DEK v1", "audit acme"]),
    );
  });

  it("puts a value from stdin, gets only the value back, and refuses a value given as an argument", async () => {
    const put = await cli(["secrets", "put", "acme", "api-key"], { stdin: `${CANARY}\n` });
    expect(put.code).toBe(0);
    expect(put.stdout).toBe("acme/api-key: wrote version 1\n");
    const got = await cli(["secrets", "get", "acme", "api-key", "--reason", "cli test"]);
    expect(got.code).toBe(0);
    expect(got.stdout).toBe(`${CANARY}\n`);

    const argv = await cli(["secrets", "put", "acme", "api-key", `${CANARY}-argv`]);
    expect(argv.code).toBe(2);
    expect(argv.stderr).toContain("values are never taken as arguments");
    const still = await cli(["--json", "secrets", "get", "acme", "api-key", "--reason", "cli test"]);
    expect(JSON.parse(still.stdout)).toMatchObject({ version: 1, value: CANARY });

    const noReason = await cli(["secrets", "get", "acme", "api-key"]);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toContain("--reason");
  });

  it("tenants list names every tenant", async () => {
    expect((await cli(["tenants", "create", "globex"])).code).toBe(0);
    const listed = await cli(["--json", "tenants", "list"]);
    expect(JSON.parse(listed.stdout).tenants).toEqual(expect.arrayContaining(["acme", "globex"]));
  });

  it("versions, destroy and purge: metadata only, irreversible, nothing left", async () => {
    for (const value of [`${CANARY}-v1`, `${CANARY}-v2`]) {
      expect((await cli(["secrets", "put", "acme", "old"], { stdin: value })).code).toBe(0);
    }
    const listed = await cli(["--json", "secrets", "versions", "acme", "old"]);
    expect(listed.stdout).not.toContain(CANARY);
    const versions = (JSON.parse(listed.stdout) as { versions: { version: number; destroyed: boolean }[] })
      .versions;
    expect(versions.map((v) => [v.version, v.destroyed])).toEqual([
      [1, false],
      [2, false],
    ]);
    expect((await cli(["secrets", "destroy", "acme", "old", "--version", "1"])).code).toBe(0);
    const gone = await cli(["secrets", "get", "acme", "old", "--version", "1", "--reason", "cli test"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("410 version_destroyed");
    expect((await cli(["secrets", "purge", "acme", "old"])).code).toBe(0);
    expect((await cli(["secrets", "versions", "acme", "old"])).code).toBe(1);
  });

  it("tenants delete needs the id twice, then crypto-shreds and prints the certificate", async () => {
    expect((await cli(["tenants", "create", "doomed"])).code).toBe(0);
    expect((await cli(["secrets", "put", "doomed", "k"], { stdin: `${CANARY}-doomed` })).code).toBe(0);
    const unconfirmed = await cli(["tenants", "delete", "doomed"]);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toContain("--confirm doomed");
    const deleted = await cli(["--json", "tenants", "delete", "doomed", "--confirm", "doomed"]);
    expect(deleted.code).toBe(0);
    expect(JSON.parse(deleted.stdout)).toHaveProperty("certificate");
    const read = await cli(["secrets", "get", "doomed", "k", "--reason", "after deletion"]);
    expect(read.code).toBe(1);
    expect(read.stderr).toContain("410 tenant_deleted");
    // Each tenant is reported, even after one without a certificate.
    const certificates = await cli(["--json", "tenants", "certificate", "acme", "doomed"]);
    expect(certificates.code).toBe(1);
    expect(JSON.parse(certificates.stdout).certificates).toEqual([
      { tenantId: "acme", verified: false },
      expect.objectContaining({ tenantId: "doomed", verified: true }),
    ]);
  });

  it("names the problem in one line with exit 1 for an unknown tenant, and exit 2 without a URL or a token", async () => {
    const unknown = await cli(["tenants", "show", "nope"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^problem: 404 not_found: .*\(request [\w-]+\)\nfix: /);
    expect(unknown.stderr).not.toMatch(/\n\s+at /);
    const noUrl = await runCli(["secrets", "list", "acme"], { env: { STRONGBOX_TOKEN_FILE: tokenFile } });
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain("STRONGBOX_URL");
    const noToken = await runCli(["secrets", "list", "acme"], { env: { STRONGBOX_URL: url } });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain("STRONGBOX_TOKEN");
  });

  it("rotate dek follows the sweep with a progress bar to every ciphertext on the new DEK", async () => {
    for (const name of ["a", "b", "c"]) {
      expect((await cli(["secrets", "put", "acme", name], { stdin: `${CANARY}-${name}` })).code).toBe(0);
    }
    const result = await cli(["rotate", "dek", "acme", "--run", "--timeout", "60s"]);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/acme DEK v2 .*\d+\/\d+ ciphertexts/);
    expect(result.stdout).toMatch(/acme: every ciphertext \(\d+\) is on DEK v2/);
  }, 120_000);

  it("kek status, audit export (trailers checked) and a remote verify", async () => {
    const status = await cli(["kek", "status"]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/active KEK: kek-[0-9a-f]{16}/);
    const file = join(dataDir, "acme-audit.jsonl");
    const exported = await cli(["audit", "export", "acme", "--out", file]);
    expect(exported.code).toBe(0);
    const lines = readFileSync(file, "utf8").trim().split("\n");
    expect(exported.stdout).toContain(`acme: ${lines.length} records`);
    expect(lines.every((line) => (JSON.parse(line) as { sequence?: number }).sequence !== undefined)).toBe(
      true,
    );
    const verified = await cli(["audit", "verify", "acme", "_system"]);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(/acme: intact up to sequence \d+/);
    const query = await cli(["--json", "audit", "query", "acme", "--action", "secret.read"]);
    expect(query.code).toBe(0);
    expect((JSON.parse(query.stdout) as { events: unknown[] }).events.length).toBeGreaterThan(0);
  });

  it("tokens issue prints the token alone on stdout; a revoked token is refused at once", async () => {
    const issued = await cli(["tokens", "issue", "--role", "runner", "--tenants", "acme", "--ttl", "1h"]);
    expect(issued.code).toBe(0);
    const token = issued.stdout.trim();
    expect(token).toMatch(/^sbx_\S+$/);
    const id = /token (\S+) expires/.exec(issued.stderr)?.[1] as string;
    const asRunner = { env: { STRONGBOX_TOKEN_FILE: undefined, STRONGBOX_TOKEN: token } };
    expect((await cli(["secrets", "get", "acme", "api-key", "--reason", "runner"], asRunner)).code).toBe(0);
    expect((await cli(["tokens", "revoke", id])).code).toBe(0);
    const refused = await cli(["secrets", "get", "acme", "api-key", "--reason", "runner"], asRunner);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("401 unauthenticated");
  });

  it("tokens issue --wrap prints a single-use wrapping token; unwrap gives the token once, then 410", async () => {
    const wrapped = await cli([
      "tokens",
      "issue",
      "--role",
      "runner",
      "--tenants",
      "acme",
      "--ttl",
      "1h",
      "--wrap",
      "5m",
    ]);
    expect(wrapped.code).toBe(0);
    const wrapping = wrapped.stdout.trim();
    expect(wrapping).toMatch(/^sbw_\S+$/);
    const first = await cli(["unwrap"], { stdin: `${wrapping}\n` });
    expect(first.code).toBe(0);
    expect(first.stdout.trim()).toMatch(/^sbx_\S+$/);
    const second = await cli(["unwrap"], { stdin: `${wrapping}\n` });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain("410 wrapping_token_used");
  });

  it("smoke writes, reads back and removes a throwaway secret", async () => {
    const result = await cli(["--json", "smoke", "--tenant", "acme"]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { secret: string; readBack: boolean; removed: boolean };
    expect(report).toMatchObject({ readBack: true, removed: true });
    const list = await cli(["--json", "secrets", "list", "acme"]);
    const names = (JSON.parse(list.stdout) as { secrets: { name: string }[] }).secrets.map((s) => s.name);
    expect(names).not.toContain(report.secret);
    // Purged, not soft-deleted: no version of it is left.
    expect((await cli(["secrets", "versions", "acme", report.secret])).code).toBe(1);
  });

  it("never puts a value in its own output but where asked, nor in the server's log", async () => {
    const listed = await cli(["secrets", "list", "acme"]);
    expect(listed.stdout).not.toContain(CANARY);
    expect(server.output).not.toContain(CANARY);
  });
});

describe("the incident commands (seed 002 §7.1, §10.2, §4.2)", () => {
  const issue = async (role: string, tenants: string) => {
    const issued = await cli(["tokens", "issue", "--role", role, "--tenants", tenants, "--ttl", "1h"]);
    expect(issued.code).toBe(0);
    return {
      token: issued.stdout.trim(),
      id: /token (\S+) expires/.exec(issued.stderr)?.[1] as string,
      as: { env: { STRONGBOX_TOKEN_FILE: undefined, STRONGBOX_TOKEN: issued.stdout.trim() } },
    };
  };

  beforeAll(async () => {
    expect((await cli(["tenants", "create", "incident"])).code).toBe(0);
    expect((await cli(["secrets", "put", "incident", "db"], { stdin: `${CANARY}-incident` })).code).toBe(0);
  });

  it("tenants seal refuses every read of the tenant with 423 until tenants unseal; both need --reason", async () => {
    const noReason = await cli(["tenants", "seal", "incident"]);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toContain("--reason");
    const both = await cli(["tenants", "seal", "incident", "--all", "--reason", "x"]);
    expect(both.code).toBe(2);

    const sealed = await cli(["tenants", "seal", "incident", "--reason", "suspected leak"]);
    expect(sealed.code).toBe(0);
    expect(sealed.stdout).toContain("incident: sealed");
    const refused = await cli(["secrets", "get", "incident", "db", "--reason", "during the seal"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("423 tenant_sealed");
    // Another tenant answers as before.
    expect((await cli(["secrets", "get", "acme", "api-key", "--reason", "other tenant"])).code).toBe(0);

    const unsealed = await cli(["--json", "tenants", "unseal", "incident", "--reason", "rotated"]);
    expect(unsealed.code).toBe(0);
    expect(JSON.parse(unsealed.stdout)).toMatchObject({ scope: "incident", sealed: false, done: true });
    const read = await cli(["secrets", "get", "incident", "db", "--reason", "after the seal"]);
    expect(read.code).toBe(0);
    expect(read.stdout).toBe(`${CANARY}-incident\n`);
  });

  it("tokens list shows the access review's metadata, filtered, and never a token or its hash", async () => {
    const runner = await issue("runner", "incident");
    const active = await cli(["--json", "tokens", "list", "--role", "runner", "--tenant", "incident"]);
    expect(active.code).toBe(0);
    const listed = (JSON.parse(active.stdout) as { tokens: { id: string; status: string; role: string }[] })
      .tokens;
    expect(listed).toContainEqual(
      expect.objectContaining({ id: runner.id, status: "active", role: "runner" }),
    );
    expect(listed.every((t) => t.role === "runner")).toBe(true);
    expect(active.stdout).not.toContain(runner.token.slice(4));

    expect((await cli(["tokens", "revoke", runner.id])).code).toBe(0);
    const revoked = await cli(["tokens", "list", "--status", "revoked"]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout.split("\n")[0]).toMatch(/^ID +STATUS +ROLE +TENANTS/);
    expect(revoked.stdout).toMatch(new RegExp(`${runner.id} +revoked +runner +incident`));

    const bad = await cli(["tokens", "list", "--status", "stolen"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--status is one of");
  });

  it("break-glass: an operator requests, a different named admin approves, the credential reads until revoked", async () => {
    const operator = await issue("operator", "incident");
    const approver = await issue("admin", "*");

    const requested = await cli(
      ["--json", "break-glass", "request", "incident", "--reason", "pager 1234", "--minutes", "15"],
      operator.as,
    );
    expect(requested.code).toBe(0);
    const request = JSON.parse(requested.stdout) as { id: string; status: string };
    expect(request.status).toBe("pending");
    const tooLong = await cli(
      ["break-glass", "request", "incident", "--reason", "x", "--minutes", "90"],
      operator.as,
    );
    expect(tooLong.code).toBe(2);

    // The requester cannot approve its own request, and neither can the bootstrap admin token.
    const self = await cli(["break-glass", "approve", "incident", request.id], operator.as);
    expect(self.code).toBe(1);
    expect(self.stderr).toContain("403");
    const bootstrap = await cli(["break-glass", "approve", "incident", request.id]);
    expect(bootstrap.code).toBe(1);
    expect(bootstrap.stderr).toContain("403");

    const approved = await cli(["break-glass", "approve", "incident", request.id], approver.as);
    expect(approved.code).toBe(0);
    expect(approved.stdout).toContain("approved until");

    const activated = await cli(["break-glass", "activate", "incident", request.id], operator.as);
    expect(activated.code).toBe(0);
    const credential = activated.stdout.trim();
    expect(credential).toMatch(/^sbg_\S+$/);
    const asBreakGlass = { env: { STRONGBOX_TOKEN_FILE: undefined, STRONGBOX_TOKEN: credential } };
    const read = await cli(["secrets", "get", "incident", "db", "--reason", "break-glass"], asBreakGlass);
    expect(read.code).toBe(0);
    expect(read.stdout).toBe(`${CANARY}-incident\n`);
    // An admin on its one tenant only.
    const elsewhere = await cli(
      ["secrets", "get", "acme", "api-key", "--reason", "break-glass"],
      asBreakGlass,
    );
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain("403");

    const revoked = await cli(["break-glass", "revoke", "incident", request.id], approver.as);
    expect(revoked.code).toBe(0);
    const after = await cli(["secrets", "get", "incident", "db", "--reason", "after revoke"], asBreakGlass);
    expect(after.code).toBe(1);
    expect(after.stderr).toContain("401 unauthenticated");
    expect(server.output).not.toContain(credential.slice(4));
  });
});
