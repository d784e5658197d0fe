import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { deletionCertificateKey, tenantPartition } from "../../shared/storage/keys.ts";
import { getRawItem, injectFault, putRawItem } from "../../testing/faults.ts";
import { type Harness, randomKek, startHarness } from "../../testing/harness.ts";

/*
 * Tenant deletion by crypto-shredding: the DEKs go first, then a checkpointed sweep removes the items
 * (crashed after k deletions and resumed), keeping the audit chain, and a MAC'd certificate says so.
 */

const REASON = { "x-audit-reason": "tenant deletion test" };
const DAY_MS = 86_400_000;
const CANARY = "DELETED-TENANT-CANARY-4f1a";
let h: Harness;
/** A second instance on the same table and KEK, which keeps its own DEK cache. */
let other: Harness;
let admin: string;

const secretPath = (tenant: string, name: string) => `/v1/tenants/${tenant}/secrets/${name}`;
const remove = (tenant: string, confirm: unknown = tenant, token = admin) =>
  h.call("DELETE", `/v1/tenants/${tenant}`, { token, body: { confirm } });

/** Items left in the tenant's partition, by sort key. */
async function partition(tenant: string): Promise<string[]> {
  const output = await h.table.query({
    consistent: true,
    keyCondition: "pk = :pk",
    values: { ":pk": tenantPartition(tenant) },
  });
  return output.items.map((item) => String(item.sk));
}

/** A tenant with `secrets` secrets of `versions` versions each, and a second DEK version. */
async function populate(tenant: string, secrets: number, versions: number): Promise<void> {
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: tenant } })).status).toBe(
    201,
  );
  for (let s = 0; s < secrets; s += 1) {
    for (let v = 0; v < versions; v += 1) {
      const put = await h.call("PUT", secretPath(tenant, `s${s}`), {
        token: admin,
        body: { value: `${CANARY}-${s}-${v}` },
      });
      expect(put.status).toBe(200);
    }
  }
  expect((await h.call("POST", `/v1/tenants/${tenant}/rotate-dek`, { token: admin })).status).toBeLessThan(
    300,
  );
}

beforeAll(async () => {
  const keyring = new LocalKeyring({ active: randomKek(), previous: [] });
  // Pages of two, so every sweep spans several checkpoints; no lease wait after a crash.
  h = await startHarness({ keyring, rotation: { pageSize: 2, leaseMs: 0 } });
  other = await startHarness({ keyring, store: { dynamo: h.dynamo, table: h.table } });
  admin = await h.token("admin");
});
afterAll(async () => {
  await other?.close();
  await h?.close();
});

describe("DELETE /v1/tenants/{t}", () => {
  it("refuses a missing or mismatched confirm with 400 and deletes nothing", async () => {
    await populate("kept", 1, 1);
    for (const body of [{ confirm: "other" }, {}, { confirm: "kept", extra: 1 }]) {
      const response = await h.call("DELETE", "/v1/tenants/kept", { token: admin, body });
      expect(response.status).toBe(400);
      expect((await response.json()).error.code).toBe("invalid_request");
    }
    expect((await h.call("GET", secretPath("kept", "s0"), { token: admin, headers: REASON })).status).toBe(
      200,
    );
  });

  it("is for admins only: an operator of the tenant is refused and nothing changes", async () => {
    const operator = await h.token("operator", ["kept"]);
    expect((await remove("kept", "kept", operator)).status).toBe(403);
    expect((await h.call("GET", "/v1/tenants/kept", { token: admin })).status).toBe(200);
  });

  it("a tenant that does not exist is 404", async () => {
    expect((await remove("never-was")).status).toBe(404);
  });

  it("shreds, sweeps and certifies: nothing of the tenant can be read, its audit chain stays", async () => {
    await populate("doomed", 3, 2);
    // Warm both instances' DEK caches, so only the deletion mark can stop their reads.
    for (const instance of [h, other]) {
      const read = await instance.call("GET", secretPath("doomed", "s0"), { token: admin, headers: REASON });
      expect(read.status).toBe(200);
    }
    const response = await remove("doomed");
    expect(response.status).toBe(200);
    expect(response.text).not.toContain(CANARY);
    const { status, certificate } = await response.json();
    expect(status).toBe("deleted");
    expect(certificate).toMatchObject({
      tenantId: "doomed",
      dekVersionsDestroyed: [1, 2],
      items: { secrets: 3, versions: 3, other: expect.any(Number) },
      auditHead: { sequence: expect.any(Number), hash: expect.stringMatching(/^[0-9a-f]{64}$/) },
      mac: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    // Only the tombstone is left in the partition; its wrapped DEKs are gone.
    expect(await partition("doomed")).toEqual(["TENANT"]);
    const tombstone = await getRawItem(h.table, { pk: tenantPartition("doomed"), sk: "TENANT" });
    expect(tombstone.dataKeys).toEqual([]);
    // Every route on the tenant is refused, on either instance, whatever its cache holds.
    for (const instance of [h, other]) {
      const read = await instance.call("GET", secretPath("doomed", "s0"), { token: admin, headers: REASON });
      expect(read.status).toBe(410);
      expect((await read.json()).error.code).toBe("tenant_deleted");
    }
    const write = await h.call("PUT", secretPath("doomed", "s9"), { token: admin, body: { value: "x" } });
    expect(write.status).toBe(410);
    expect((await h.call("GET", "/v1/tenants/doomed", { token: admin })).status).toBe(410);
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "doomed" } })).status).toBe(
      409,
    );
    // The audit chain is kept and intact, and ends with the deletion.
    const verify = await h.call("GET", "/v1/tenants/doomed/audit/verify", { token: admin });
    expect(await verify.json()).toMatchObject({ intact: true });
    const events = (
      await (await h.call("GET", "/v1/tenants/doomed/audit?limit=999", { token: admin })).json()
    ).events as { action: string; outcome: string }[];
    expect(
      events
        .filter((e) => e.action === "tenant.delete")
        .map((e) => e.outcome)
        .sort(),
    ).toEqual(["attempt", "success"]);
    // Deleting again answers with the same certificate.
    expect((await (await remove("doomed")).json()).certificate).toEqual(certificate);
    // The other tenant is untouched.
    expect((await h.call("GET", secretPath("kept", "s0"), { token: admin, headers: REASON })).status).toBe(
      200,
    );
  });

  it("a deleted tenant never gets a DEK again: rotate-dek is 410, and the runner's age scan skips it", async () => {
    const rotate = await h.call("POST", "/v1/tenants/doomed/rotate-dek", { token: admin });
    expect(rotate.status).toBe(410);
    expect((await rotate.json()).error.code).toBe("tenant_deleted");
    // Past the rotation period, the scheduled runner would rotate any live tenant's DEK.
    const tombstone = await getRawItem(h.table, { pk: tenantPartition("doomed"), sk: "TENANT" });
    await putRawItem(h.table, {
      ...tombstone,
      dekRotatedAt: new Date(Date.now() - 400 * DAY_MS).toISOString(),
    });
    const run = await h.call("POST", "/v1/rotation/run", { token: admin, headers: REASON });
    expect(run.status).toBe(200);
    expect((await run.json()).deks).toMatchObject({ failed: 0, scanComplete: true });
    const after = await getRawItem(h.table, { pk: tenantPartition("doomed"), sk: "TENANT" });
    expect(after.dataKeys).toEqual([]);
    expect(after.currentDekVersion).toBe(tombstone.currentDekVersion);
  });

  it("a sealed tenant can be deleted: the seal stops use during the incident, the deletion ends it", async () => {
    await populate("leaked", 1, 1);
    const sealed = await h.call("POST", "/v1/tenants/leaked/seal", {
      token: admin,
      body: { reason: "leak" },
    });
    expect(sealed.status).toBe(200);
    expect((await h.call("GET", secretPath("leaked", "s0"), { token: admin, headers: REASON })).status).toBe(
      423,
    );
    const response = await remove("leaked");
    expect(response.status).toBe(200);
    expect((await response.json()).certificate).toMatchObject({
      tenantId: "leaked",
      dekVersionsDestroyed: [1, 2],
    });
    expect(await partition("leaked")).toEqual(["TENANT"]);
    // The seal outlives the tenant's partition, so reads still fail closed as sealed.
    expect((await h.call("GET", secretPath("leaked", "s0"), { token: admin, headers: REASON })).status).toBe(
      423,
    );
    // Nothing is left to seal; lifting the leftover seal lets reads say what happened.
    const reseal = await h.call("POST", "/v1/tenants/leaked/seal", {
      token: admin,
      body: { reason: "again" },
    });
    expect(reseal.status).toBe(410);
    expect((await reseal.json()).error.code).toBe("tenant_deleted");
    const unseal = await h.call("POST", "/v1/tenants/leaked/unseal", {
      token: admin,
      body: { reason: "done" },
    });
    expect(unseal.status).toBe(200);
    const read = await h.call("GET", secretPath("leaked", "s0"), { token: admin, headers: REASON });
    expect(read.status).toBe(410);
    expect((await read.json()).error.code).toBe("tenant_deleted");
    expect(read.text).not.toContain(CANARY);
    expect(await partition("leaked")).toEqual(["TENANT"]);
    const verify = await h.call("GET", "/v1/tenants/leaked/audit/verify", { token: admin });
    expect(await verify.json()).toMatchObject({ intact: true });
  });

  it("the certificate verifies through the route, and an edited one does not", async () => {
    const auditor = await h.token("auditor", ["doomed"]);
    const response = await h.call("GET", "/v1/tenants/doomed/deletion-certificate", { token: auditor });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ verified: true, certificate: { tenantId: "doomed" } });
    const stored = await getRawItem(h.table, deletionCertificateKey("doomed"));
    await putRawItem(h.table, {
      ...stored,
      certificate: { ...stored.certificate, items: { ...stored.certificate.items, secrets: 0 } },
    });
    const edited = await h.call("GET", "/v1/tenants/doomed/deletion-certificate", { token: auditor });
    expect(await edited.json()).toMatchObject({ verified: false });
    await putRawItem(h.table, stored);
    expect((await h.call("GET", "/v1/tenants/kept/deletion-certificate", { token: admin })).status).toBe(404);
  });
});

describe("a sweep that crashes after k items resumes to the same end", () => {
  for (const k of [0, 1, 4, 7]) {
    it(`crash after ${k} removals, then resume: everything but the tombstone and audit is gone, counts exact`, async () => {
      const tenant = `crash-${k}`;
      await populate(tenant, 3, 3);
      const before = await partition(tenant);
      const expected = {
        secrets: before.filter((sk) => sk.startsWith("S#")).length,
        versions: before.filter((sk) => sk.startsWith("V#")).length,
        other: before.filter((sk) => !sk.startsWith("S#") && !sk.startsWith("V#") && sk !== "TENANT").length,
      };
      expect(expected.secrets).toBe(3);
      expect(expected.versions).toBe(6);
      let removals = 0;
      const fault = injectFault(
        h.table,
        (call) => call.commandName === "DeleteItemCommand" && ++removals > k,
      );
      const crashed = await remove(tenant);
      fault.remove();
      expect(crashed.status).toBe(503);
      // Shredded before the crash: the remaining ciphertext is already unreadable.
      expect((await partition(tenant)).length).toBe(before.length - k);
      const read = await h.call("GET", secretPath(tenant, "s2"), { token: admin, headers: REASON });
      expect(read.status).toBe(410);
      const resumed = await remove(tenant);
      expect(resumed.status).toBe(200);
      const { certificate } = await resumed.json();
      expect(certificate.items).toEqual(expected);
      expect(certificate.dekVersionsDestroyed).toEqual([1, 2]);
      expect(await partition(tenant)).toEqual(["TENANT"]);
      const verify = await h.call("GET", `/v1/tenants/${tenant}/audit/verify`, { token: admin });
      expect(await verify.json()).toMatchObject({ intact: true });
      const check = await h.call("GET", `/v1/tenants/${tenant}/deletion-certificate`, { token: admin });
      expect(await check.json()).toMatchObject({ verified: true, certificate });
    });
  }
});
