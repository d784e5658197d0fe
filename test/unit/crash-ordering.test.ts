import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { injectFault, type SdkCall } from "../../testing/faults.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";

// A crash between two writes is simulated by failing the second one at the SDK, after the first has
// reached dynalite: the state left behind is exactly what a process dying at that point would leave.

let h: Harness;
let admin: string;
const path = "/v1/tenants/acme/secrets/db-password";
const reason = { "x-audit-reason": "crash test" };

const putItemSortKey = (call: SdkCall): string | undefined => {
  if (call.commandName !== "PutItemCommand") return undefined;
  const sk = (call.input.Item as Record<string, unknown> | undefined)?.sk;
  return typeof sk === "string" ? sk : undefined;
};
const headCommits = (call: SdkCall) => putItemSortKey(call)?.startsWith("S#") ?? false;
const archiveWrites = (call: SdkCall) => putItemSortKey(call)?.startsWith("V#") ?? false;
const tenantWrites = (call: SdkCall) => putItemSortKey(call) === "TENANT";

async function readVersion(version?: number) {
  const query = version === undefined ? "" : `?version=${version}`;
  return h.call("GET", `${path}${query}`, { token: admin, headers: reason });
}

async function expectReadable(expected: Record<number, string>, current: number) {
  const latest = await readVersion();
  expect(await latest.json()).toMatchObject({ version: current, value: expected[current] });
  for (const [version, value] of Object.entries(expected)) {
    expect(await (await readVersion(Number(version))).json()).toMatchObject({
      version: Number(version),
      value,
    });
  }
  expect((await readVersion(current + 1)).status).toBe(404);
}

beforeAll(async () => {
  h = await startHarness();
  admin = await h.token("admin");
  await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } });
  for (const value of ["one", "two"]) await h.call("PUT", path, { token: admin, body: { value } });
});
afterAll(() => h.close());

describe("a write that dies between its two writes", () => {
  it("after archiving but before the head commit leaves every committed version readable", async () => {
    const fault = injectFault(h.table, headCommits);
    const response = await h.call("PUT", path, { token: admin, body: { value: "three" } });
    fault.remove();
    expect(response.status).toBe(503);
    expect(fault.refused).toBe(1);
    await expectReadable({ 1: "one", 2: "two" }, 2);
  });

  it("the next write after such a crash commits the next version as usual", async () => {
    const response = await h.call("PUT", path, { token: admin, body: { value: "three", cas: 2 } });
    expect(await response.json()).toEqual({ name: "db-password", version: 3 });
    await expectReadable({ 1: "one", 2: "two", 3: "three" }, 3);
  });

  it("before archiving leaves the secret exactly as it was", async () => {
    const fault = injectFault(h.table, archiveWrites);
    const response = await h.call("PUT", path, { token: admin, body: { value: "four" } });
    fault.remove();
    expect(response.status).toBe(503);
    await expectReadable({ 1: "one", 2: "two", 3: "three" }, 3);
  });
});

describe("a tenant creation that dies after registering its KEK", () => {
  it("leaves no tenant, a healthy service, and can simply be retried", async () => {
    const fault = injectFault(h.table, tenantWrites);
    const failed = await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "globex" } });
    fault.remove();
    expect(failed.status).toBe(503);
    expect((await h.call("GET", "/v1/tenants/globex", { token: admin })).status).toBe(404);
    expect((await h.call("GET", "/health")).status).toBe(200);
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "globex" } })).status).toBe(
      201,
    );
  });
});

describe("the first tenant creation on a fresh table", () => {
  const directoryWrites = (call: SdkCall) =>
    call.commandName === "PutItemCommand" &&
    (call.input.Item as { pk?: unknown } | undefined)?.pk === "TENANTS";
  const registryCreate = (call: SdkCall) =>
    call.commandName === "UpdateItemCommand" &&
    String(call.input.ConditionExpression).includes("attribute_not_exists");

  it("dying after the registry item was created leaves it complete and honest, and is simply retried", async () => {
    const fresh = await startHarness();
    try {
      const token = await fresh.token("admin");
      const fault = injectFault(fresh.table, directoryWrites);
      const failed = await fresh.call("POST", "/v1/tenants", { token, body: { tenantId: "initech" } });
      fault.remove();
      expect(failed.status).toBe(503);
      // The registry names the KEK (an extra name, never a missing one) and says the directory is
      // complete, which it is: no tenant was written.
      const kek = await fresh.call("GET", "/v1/kek", { token });
      expect(kek.status).toBe(200);
      expect((await kek.json()).keks).toEqual([expect.objectContaining({ dataKeys: 0, registered: true })]);
      expect((await fresh.call("GET", "/health")).status).toBe(200);
      expect((await fresh.call("POST", "/v1/tenants", { token, body: { tenantId: "initech" } })).status).toBe(
        201,
      );
      expect((await (await fresh.call("GET", "/v1/kek", { token })).json()).keks[0].dataKeys).toBe(1);
    } finally {
      await fresh.close();
    }
  });

  it("dying at the registry item's creation writes nothing, and is simply retried", async () => {
    const fresh = await startHarness();
    try {
      const token = await fresh.token("admin");
      const fault = injectFault(fresh.table, registryCreate);
      const failed = await fresh.call("POST", "/v1/tenants", { token, body: { tenantId: "initech" } });
      fault.remove();
      expect(failed.status).toBe(503);
      expect(fault.refused).toBe(1);
      expect((await (await fresh.call("GET", "/v1/kek", { token })).json()).keks).toEqual([
        expect.objectContaining({ dataKeys: 0, registered: false }),
      ]);
      expect((await fresh.call("POST", "/v1/tenants", { token, body: { tenantId: "initech" } })).status).toBe(
        201,
      );
      const keks = (await (await fresh.call("GET", "/v1/kek", { token })).json()).keks;
      expect(keks).toEqual([expect.objectContaining({ dataKeys: 1, registered: true })]);
    } finally {
      await fresh.close();
    }
  });
});
