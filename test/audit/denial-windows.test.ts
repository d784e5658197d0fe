import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type Harness, randomKek, startHarness } from "../../testing/harness.ts";
import { ServerProcess, stopAllServers } from "../../testing/server-process.ts";

/*
 * Repeated denials are collapsed into one counted record when their window closes. Timers alone
 * lose counts where instances are frozen (Lambda) or stopped, so windows also close lazily on the
 * next request and on shutdown.
 */

let h: Harness;
let admin: string;

beforeAll(async () => {
  h = await startHarness();
  admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "windows" } })).status).toBe(
    201,
  );
});
afterAll(async () => {
  await h.close();
});
afterEach(() => {
  vi.restoreAllMocks();
});

const deniedRecords = async () => {
  const response = await h.call("GET", "/v1/tenants/windows/audit?outcome=denied&limit=999", {
    token: admin,
  });
  return (await response.json()).events as { count?: number }[];
};

describe("a denial window whose time is up", () => {
  it("is closed, with its count on the record, by the next request, whichever route it takes", async () => {
    const runner = await h.token("runner", ["windows"]);
    for (let i = 0; i < 4; i += 1) {
      const response = await h.call("PUT", "/v1/tenants/windows/secrets/guess", {
        token: runner,
        body: { value: "x" },
      });
      expect(response.status).toBe(403);
    }
    expect((await deniedRecords()).map((e) => e.count ?? 1)).toEqual([1]);
    // The window's timer (60 s) is never reached: only the clock the service reads moves on, as when a
    // frozen Lambda instance thaws. The next request, even /health, closes the window.
    const later = Date.now() + 61_000;
    vi.spyOn(Date, "now").mockReturnValue(later);
    expect((await h.call("GET", "/health")).status).toBe(200);
    vi.restoreAllMocks();
    expect((await deniedRecords()).map((e) => e.count ?? 1)).toEqual([3, 1]);
  });

  it("stays open while its time is not up: the next request does not close it early", async () => {
    const auditor = await h.token("auditor", ["elsewhere"]);
    for (let i = 0; i < 3; i += 1) {
      expect((await h.call("GET", "/v1/tenants/windows/audit", { token: auditor })).status).toBe(403);
    }
    const before = (await deniedRecords()).length;
    expect((await h.call("GET", "/health")).status).toBe(200);
    expect(await deniedRecords()).toHaveLength(before);
    await h.runtime.denials.flush();
    expect((await deniedRecords())[0]).toMatchObject({ count: 2 });
  });
});

describe("stopping the local server", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await stopAllServers();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it("writes the counts of open denial windows into the chain before it exits", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "strongbox-denials-"));
    dirs.push(dataDir);
    const env = { DATA_DIR: dataDir, CREDENTIALS_KEK: Buffer.from(randomKek()).toString("base64") };
    const call = async (url: string, token: string, method: string, path: string, body?: unknown) => {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: response.status, json: (await response.json().catch(() => undefined)) as any };
    };
    let server = ServerProcess.start({ env });
    let url = await server.listening();
    const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    expect((await call(url, token, "POST", "/v1/tenants", { tenantId: "acme" })).status).toBe(201);
    const runner = await call(url, token, "POST", "/v1/tokens", {
      role: "runner",
      tenants: ["acme"],
      ttlSeconds: 600,
    });
    for (let i = 0; i < 5; i += 1) {
      const denied = await call(url, runner.json.token, "PUT", "/v1/tenants/acme/secrets/x", {
        value: "guess",
      });
      expect(denied.status).toBe(403);
    }
    expect(await server.stop()).toEqual({ code: 0, signal: null });
    server = ServerProcess.start({ env });
    url = await server.listening();
    const trail = await call(url, token, "GET", "/v1/tenants/acme/audit?outcome=denied&limit=999");
    expect(trail.json.events.map((e: { count?: number }) => e.count ?? 1)).toEqual([4, 1]);
  });
});
