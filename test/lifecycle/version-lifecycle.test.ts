import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { headKey, versionKey } from "../../shared/storage/keys.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";

const TENANT = "acme";
const REASON = { "x-audit-reason": "version lifecycle test" };
let h: Harness;
let admin: string;

const base = (name: string) => `/v1/tenants/${TENANT}/secrets/${name}`;
const put = (name: string, body: Record<string, unknown>) =>
  h.call("PUT", base(name), { token: admin, body });
const read = (name: string, query = "") =>
  h.call("GET", `${base(name)}${query}`, { token: admin, headers: REASON });

/** The ciphertext the table still holds for an archived version, if any. */
async function storedEnvelope(name: string, version: number): Promise<unknown> {
  return (await h.table.get(versionKey(TENANT, name, version)))?.envelope;
}

beforeAll(async () => {
  h = await startHarness({ env: { SECRET_RECOVERY_WINDOW_DAYS: "7" } });
  admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } })).status).toBe(
    201,
  );
});
afterAll(() => h?.close());

describe("a new write after a delete starts a new history", () => {
  it("?stage=previous and ?version=1 do not read the deleted value after re-creating", async () => {
    expect((await put("revived", { value: "DELETED-VALUE-1" })).status).toBe(200);
    expect((await put("revived", { value: "DELETED-VALUE-2" })).status).toBe(200);
    expect(await storedEnvelope("revived", 1)).toBeDefined();
    expect((await h.call("DELETE", base("revived"), { token: admin })).status).toBe(204);
    expect(await (await put("revived", { value: "fresh" })).json()).toEqual({ name: "revived", version: 3 });
    const previous = await read("revived", "?stage=previous");
    expect(previous.status).toBe(404);
    expect(previous.text).not.toContain("DELETED-VALUE");
    for (const version of [1, 2]) expect((await read("revived", `?version=${version}`)).status).toBe(404);
    const versions = await (await h.call("GET", `${base("revived")}/versions`, { token: admin })).json();
    expect(versions.versions.map((v: { version: number }) => v.version)).toEqual([3]);
    // The old history's ciphertext is gone from the table too, not merely hidden.
    const v1 = await storedEnvelope("revived", 1);
    expect(v1).toBeUndefined();
  });

  it("an undeleted secret keeps its history", async () => {
    await put("undone", { value: "u1" });
    await put("undone", { value: "u2" });
    expect((await h.call("DELETE", base("undone"), { token: admin })).status).toBe(204);
    expect((await read("undone")).status).toBe(404);
    const undelete = await h.call("POST", `${base("undone")}/undelete`, { token: admin });
    expect(undelete.status).toBe(200);
    expect(await undelete.json()).toMatchObject({ name: "undone", version: 2 });
    expect(await (await read("undone", "?stage=previous")).json()).toMatchObject({ version: 1, value: "u1" });
    // A second undelete finds nothing deleted.
    expect((await h.call("POST", `${base("undone")}/undelete`, { token: admin })).status).toBe(409);
  });

  it("undelete past the recovery window is refused with 410 and the secret stays deleted", async () => {
    await put("late", { value: "l1" });
    const past = new Date(Date.now() - 8 * 24 * 3600 * 1000).toISOString();
    expect((await h.call("DELETE", base("late"), { token: admin })).status).toBe(204);
    // Moved back in the table rather than waiting a week.
    await h.table.update(headKey(TENANT, "late"), {
      update: "SET deletedAt = :past",
      values: { ":past": past },
    });
    const undelete = await h.call("POST", `${base("late")}/undelete`, { token: admin });
    expect(undelete.status).toBe(410);
    expect((await undelete.json()).error.code).toBe("recovery_window_passed");
    expect((await read("late")).status).toBe(404);
  });

  it("undelete of a name that never existed is 404", async () => {
    expect((await h.call("POST", `${base("never")}/undelete`, { token: admin })).status).toBe(404);
  });
});

describe("versions: metadata, destroy, maxVersions, purge", () => {
  it("lists metadata only: version, createdAt, createdBy, labels, dekVersion, destroyed", async () => {
    const writer = await h.runtime.tokens.issue("operator", [TENANT], 3600);
    for (const value of ["META-V1", "META-V2", "META-V3"]) {
      const response = await h.call("PUT", base("meta"), { token: writer.token, body: { value } });
      expect(response.status).toBe(200);
    }
    const response = await h.call("GET", `${base("meta")}/versions`, { token: admin });
    expect(response.status).toBe(200);
    expect(response.text).not.toContain("META-V");
    const body = await response.json();
    expect(body.name).toBe("meta");
    expect(body.versions).toEqual([
      {
        version: 1,
        createdAt: expect.any(String),
        createdBy: writer.id,
        labels: [],
        dekVersion: 1,
        destroyed: false,
      },
      {
        version: 2,
        createdAt: expect.any(String),
        createdBy: writer.id,
        labels: ["previous"],
        dekVersion: 1,
        destroyed: false,
      },
      {
        version: 3,
        createdAt: expect.any(String),
        createdBy: writer.id,
        labels: ["current"],
        dekVersion: 1,
        destroyed: false,
      },
    ]);
  });

  it("destroy removes the ciphertext irreversibly: reads get 410, the listing says destroyed", async () => {
    for (const value of ["D1", "D2", "D3"]) await put("destroy-me", { value });
    expect((await h.call("DELETE", `${base("destroy-me")}/versions/1`, { token: admin })).status).toBe(204);
    expect(await storedEnvelope("destroy-me", 1)).toBeUndefined();
    const gone = await read("destroy-me", "?version=1");
    expect(gone.status).toBe(410);
    expect((await gone.json()).error.code).toBe("version_destroyed");
    // Destroying again is the same outcome: it stays destroyed.
    expect((await h.call("DELETE", `${base("destroy-me")}/versions/1`, { token: admin })).status).toBe(204);
    // The previous version may be destroyed (seed 002 §6.2 step 5, "revoke the old secret"); its label goes.
    expect((await h.call("DELETE", `${base("destroy-me")}/versions/2`, { token: admin })).status).toBe(204);
    expect((await read("destroy-me", "?stage=previous")).status).toBe(404);
    const versions = (await (await h.call("GET", `${base("destroy-me")}/versions`, { token: admin })).json())
      .versions;
    expect(versions.map((v: { destroyed: boolean }) => v.destroyed)).toEqual([true, true, false]);
    expect(versions[1].labels).toEqual([]);
    // The current version cannot be destroyed; write another or delete the secret.
    expect((await h.call("DELETE", `${base("destroy-me")}/versions/3`, { token: admin })).status).toBe(409);
    expect(await (await read("destroy-me")).json()).toMatchObject({ version: 3, value: "D3" });
    // A version that was never written is 404.
    expect((await h.call("DELETE", `${base("destroy-me")}/versions/9`, { token: admin })).status).toBe(404);
  });

  it("maxVersions destroys the oldest unlabelled versions past it", async () => {
    await put("bounded", { value: "B1", maxVersions: 2 });
    for (const value of ["B2", "B3", "B4"]) await put("bounded", { value });
    const versions = (await (await h.call("GET", `${base("bounded")}/versions`, { token: admin })).json())
      .versions;
    expect(versions.map((v: { version: number; destroyed: boolean }) => [v.version, v.destroyed])).toEqual([
      [1, true],
      [2, true],
      [3, false],
      [4, false],
    ]);
    expect((await read("bounded", "?version=2")).status).toBe(410);
    expect(await (await read("bounded", "?stage=previous")).json()).toMatchObject({ value: "B3" });
  });

  it("purge destroys everything for a name; the name then starts afresh", async () => {
    for (const value of ["P1", "P2"]) await put("purged", { value });
    expect((await h.call("POST", `${base("purged")}/purge`, { token: admin })).status).toBe(204);
    expect((await read("purged")).status).toBe(404);
    expect(await storedEnvelope("purged", 1)).toBeUndefined();
    expect((await h.call("GET", `${base("purged")}/versions`, { token: admin })).status).toBe(404);
    expect((await h.call("POST", `${base("purged")}/undelete`, { token: admin })).status).toBe(404);
    expect((await h.call("POST", `${base("purged")}/purge`, { token: admin })).status).toBe(404);
  });

  it("every lifecycle change is audited under its own operation", async () => {
    await put("audited", { value: "A1" });
    await put("audited", { value: "A2" });
    await h.call("DELETE", `${base("audited")}/versions/1`, { token: admin });
    await h.call("DELETE", base("audited"), { token: admin });
    await h.call("POST", `${base("audited")}/undelete`, { token: admin });
    await h.call("GET", `${base("audited")}/versions`, { token: admin });
    await h.call("POST", `${base("audited")}/purge`, { token: admin });
    const events = (
      await (
        await h.call("GET", `/v1/tenants/${TENANT}/audit?secret=audited&limit=999`, { token: admin })
      ).json()
    ).events as { action: string; outcome: string; version?: number }[];
    const seen = (action: string) =>
      events
        .filter((e) => e.action === action)
        .map((e) => e.outcome)
        .sort();
    expect(seen("secret.destroy-version")).toEqual(["attempt", "success"]);
    expect(
      events.find((e) => e.action === "secret.destroy-version" && e.outcome === "success")?.version,
    ).toBe(1);
    expect(seen("secret.undelete")).toEqual(["attempt", "success"]);
    expect(seen("secret.versions")).toEqual(["success"]);
    expect(seen("secret.purge")).toEqual(["attempt", "success"]);
  });
});
