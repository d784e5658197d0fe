import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SecretRepository } from "../../shared/storage/secret-repository.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";

let h: Harness;
let admin: string;
const read = (path: string, token = admin) =>
  h.call("GET", path, { token, headers: { "x-audit-reason": "test" } });

beforeAll(async () => {
  h = await startHarness();
  admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } })).status).toBe(
    201,
  );
});
afterAll(() => h.close());

describe("secrets over the HTTP API", () => {
  it("writes a secret and reads the same value back", async () => {
    const put = await h.call("PUT", "/v1/tenants/acme/secrets/openai-key", {
      token: admin,
      body: { value: "sk-ä✓" },
    });
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ name: "openai-key", version: 1 });
    const got = await read("/v1/tenants/acme/secrets/openai-key");
    expect(got.status).toBe(200);
    const body = await got.json();
    expect(body).toMatchObject({ name: "openai-key", version: 1, value: "sk-ä✓" });
    expect(Date.parse(body.createdAt)).not.toBeNaN();
  });

  it("each write creates the next version and older versions stay readable", async () => {
    for (const value of ["v1", "v2", "v3"]) {
      await h.call("PUT", "/v1/tenants/acme/secrets/rotating", { token: admin, body: { value } });
    }
    expect(await (await read("/v1/tenants/acme/secrets/rotating")).json()).toMatchObject({
      version: 3,
      value: "v3",
    });
    expect(await (await read("/v1/tenants/acme/secrets/rotating?version=1")).json()).toMatchObject({
      version: 1,
      value: "v1",
    });
    expect(await (await read("/v1/tenants/acme/secrets/rotating?version=2")).json()).toMatchObject({
      value: "v2",
    });
    expect((await read("/v1/tenants/acme/secrets/rotating?version=4")).status).toBe(404);
  });

  it("cas 0 creates only, cas N writes only over version N", async () => {
    const path = "/v1/tenants/acme/secrets/cas-demo";
    expect((await h.call("PUT", path, { token: admin, body: { value: "a", cas: 0 } })).status).toBe(200);
    const again = await h.call("PUT", path, { token: admin, body: { value: "b", cas: 0 } });
    expect(again.status).toBe(409);
    expect((await again.json()).error.code).toBe("conflict");
    expect((await h.call("PUT", path, { token: admin, body: { value: "b", cas: 2 } })).status).toBe(409);
    const ok = await h.call("PUT", path, { token: admin, body: { value: "b", cas: 1 } });
    expect(await ok.json()).toEqual({ name: "cas-demo", version: 2 });
    expect(await (await read(path)).json()).toMatchObject({ version: 2, value: "b" });
  });

  it("concurrent writers without cas each get a distinct version and none is lost", async () => {
    const path = "/v1/tenants/acme/secrets/contended";
    const results = await Promise.all(
      Array.from({ length: 4 }, (_, i) => h.call("PUT", path, { token: admin, body: { value: `w${i}` } })),
    );
    const versions = await Promise.all(
      results.filter((r) => r.status === 200).map(async (r) => (await r.json()).version),
    );
    expect(new Set(versions).size).toBe(versions.length);
    for (const response of results) expect([200, 409]).toContain(response.status);
    for (const version of versions) {
      expect((await read(`${path}?version=${version}`)).status).toBe(200);
    }
  });

  it("lists names and versions without values", async () => {
    const response = await h.call("GET", "/v1/tenants/acme/secrets", { token: admin });
    const body = await response.json();
    expect(body.secrets).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: "rotating", version: 3 })]),
    );
    expect(JSON.stringify(body)).not.toContain("v3");
    for (const entry of body.secrets)
      expect(Object.keys(entry).sort()).toEqual(["name", "updatedAt", "version"]);
  });

  it("paginates listings with a cursor that only continues its own tenant", async () => {
    const first = await (await h.call("GET", "/v1/tenants/acme/secrets?limit=1", { token: admin })).json();
    expect(first.secrets).toHaveLength(1);
    expect(typeof first.nextCursor).toBe("string");
    const second = await (
      await h.call("GET", `/v1/tenants/acme/secrets?limit=1&cursor=${first.nextCursor}`, { token: admin })
    ).json();
    expect(second.secrets[0].name).not.toBe(first.secrets[0].name);
    await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "other" } });
    const foreign = await h.call("GET", `/v1/tenants/other/secrets?cursor=${first.nextCursor}`, {
      token: admin,
    });
    expect(foreign.status).toBe(400);
  });

  it("soft delete hides a secret from reads and lists but keeps its versions", async () => {
    const path = "/v1/tenants/acme/secrets/doomed";
    await h.call("PUT", path, { token: admin, body: { value: "x" } });
    expect((await h.call("DELETE", path, { token: admin })).status).toBe(204);
    expect((await read(path)).status).toBe(404);
    expect((await read(`${path}?version=1`)).status).toBe(404);
    expect((await h.call("DELETE", path, { token: admin })).status).toBe(404);
    const list = await (await h.call("GET", "/v1/tenants/acme/secrets", { token: admin })).json();
    expect(list.secrets.map((s: { name: string }) => s.name)).not.toContain("doomed");
    const kept = await new SecretRepository(h.table).getHead("acme", "doomed");
    expect(kept?.current.version).toBe(1);
    expect(kept?.deletedAt).toBeDefined();
    const rewritten = await h.call("PUT", path, { token: admin, body: { value: "y", cas: 0 } });
    expect(await rewritten.json()).toEqual({ name: "doomed", version: 2 });
  });

  it("a warm read costs two DynamoDB requests: token and secret fetched together, then the audit append", async () => {
    // As deployed: the record is written under its own key, and a sequencer chains it later.
    const deployed = await startHarness({
      store: { dynamo: h.dynamo, table: h.table },
      keyring: h.runtime.keyring,
      env: { AUDIT_SEQUENCING: "deferred" },
    });
    const read = (path: string) =>
      deployed.call("GET", path, { token: admin, headers: { "x-audit-reason": "test" } });
    await read("/v1/tenants/acme/secrets/openai-key");
    const sent: string[] = [];
    h.table.doc.middlewareStack.add(
      (next, context) => async (args) => {
        sent.push(String(context.commandName));
        return next(args);
      },
      { step: "initialize", name: "count-read-commands" },
    );
    const response = await read("/v1/tenants/acme/secrets/openai-key");
    h.table.doc.middlewareStack.remove("count-read-commands");
    expect(response.status).toBe(200);
    expect(sent).toEqual(["BatchGetItemCommand", "PutItemCommand"]);
    // Chained now, as the sequencer would, so the listings below see them in order.
    await deployed.runtime.sequencer.catchUp("acme");
  });

  it("a second tenant with the same id is a 409", async () => {
    const response = await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } });
    expect(response.status).toBe(409);
  });

  it("tenant metadata shows the DEK version and never key material", async () => {
    const body = await (await h.call("GET", "/v1/tenants/acme", { token: admin })).json();
    expect(body).toMatchObject({ tenantId: "acme", currentDekVersion: 1 });
    expect(body.dataKeys[0]).toEqual({
      version: 1,
      kekId: h.runtime.keyring.activeKekId,
      createdAt: expect.any(String),
    });
  });

  it("a revoked token is refused at once", async () => {
    const issued = await (
      await h.call("POST", "/v1/tokens", {
        token: admin,
        body: { role: "runner", tenants: ["acme"], ttlSeconds: 600 },
      })
    ).json();
    expect(issued.token).toMatch(/^sbx_/);
    expect((await read("/v1/tenants/acme/secrets/openai-key", issued.token)).status).toBe(200);
    expect((await h.call("DELETE", `/v1/tokens/${issued.id}`, { token: admin })).status).toBe(204);
    expect((await read("/v1/tenants/acme/secrets/openai-key", issued.token)).status).toBe(401);
  });

  it("audit lists reads newest first with reason, actor and outcome", async () => {
    await h.call("GET", "/v1/tenants/acme/secrets/openai-key", {
      token: admin,
      headers: { "x-audit-reason": "incident 42" },
    });
    const body = await (await h.call("GET", "/v1/tenants/acme/audit?limit=5", { token: admin })).json();
    const latestRead = body.events.find((e: { action: string }) => e.action === "secret.read");
    expect(latestRead).toMatchObject({
      reason: "incident 42",
      outcome: "success",
      secretName: "openai-key",
      role: "admin",
    });
    const times = body.events.map((e: { time: string }) => e.time);
    expect([...times].sort().reverse()).toEqual(times);
  });
});
