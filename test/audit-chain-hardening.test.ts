import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chainGenesis, chainHash, chainMac, chainMacMatches } from "../shared/crypto/chain-keys.ts";
import { LocalKeyring } from "../shared/crypto/local-keyring.ts";
import { canonicalRecord } from "../shared/domain/audit-chain.ts";
import type { LocalDynamo } from "../shared/storage/local-dynamo.ts";
import type { Table } from "../shared/storage/table.ts";
import { getRawAuditRecord, putRawAuditRecord } from "./support/faults.ts";
import { type Harness, randomKek, startHarness, startStore } from "./support/harness.ts";

/*
 * Attacks from the security review, done as an attacker with write access to the table would: raw
 * DynamoDB calls behind the service's back. Each case works on chains of its own.
 */

const kek = randomKek();
const newKeyring = () => new LocalKeyring({ active: kek, previous: [] });
let store: { dynamo: LocalDynamo; table: Table };
let h: Harness;
let admin: string;
let counter = 0;
const RECORDS = 6;

/** A fresh tenant whose chain holds exactly RECORDS records, from real API calls. */
async function freshChain(): Promise<string> {
  counter += 1;
  const tenant = `harden-${counter}`;
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: tenant } })).status).toBe(
    201,
  );
  for (let i = 0; i < (RECORDS - 2) / 2; i += 1) {
    const put = await h.call("PUT", `/v1/tenants/${tenant}/secrets/s${i}`, {
      token: admin,
      body: { value: `v${i}` },
    });
    expect(put.status).toBe(200);
  }
  return tenant;
}

const verify = (scope: string) => h.runtime.auditChain.verify(scope);
const raw = (scope: string, sequence: number) => getRawAuditRecord(store.table, scope, sequence);
const rawChain = (scope: string, length = RECORDS) =>
  Promise.all(Array.from({ length }, (_, i) => raw(scope, i + 1)));

beforeAll(async () => {
  store = await startStore();
  h = await startHarness({ store, keyring: newKeyring() });
  admin = await h.token("admin");
});
afterAll(async () => {
  await store.dynamo.close();
});

describe("a chain is bound to its scope", () => {
  it("a chain copied whole into another tenant's partition breaks at record 1 as foreign_scope", async () => {
    const source = await freshChain();
    const target = await freshChain();
    for (const [i, record] of (await rawChain(source)).entries()) {
      await putRawAuditRecord(store.table, target, i + 1, record);
    }
    expect(await verify(target)).toMatchObject({
      intact: false,
      verifiedThrough: 0,
      break: { sequence: 1, reason: "foreign_scope" },
    });
    expect(await verify(source)).toMatchObject({ intact: true, verifiedThrough: RECORDS });
  });

  it("one foreign record spliced into the middle of a chain breaks there as foreign_scope", async () => {
    const source = await freshChain();
    const target = await freshChain();
    await putRawAuditRecord(store.table, target, 4, await raw(source, 4));
    expect(await verify(target)).toMatchObject({
      intact: false,
      verifiedThrough: 3,
      break: { sequence: 4, reason: "foreign_scope" },
    });
  });

  it("record 1 of every scope links to a genesis hash of its own scope", async () => {
    const a = await freshChain();
    const b = await freshChain();
    expect((await raw(a, 1)).prevHash).toBe(chainGenesis(a));
    expect((await raw(b, 1)).prevHash).toBe(chainGenesis(b));
    expect(chainGenesis(a)).not.toBe(chainGenesis(b));
  });

  it("a copied chain relabelled to the target scope, hashes recomputed, still breaks at record 1", async () => {
    const source = await freshChain();
    const target = await freshChain();
    let prevHash = chainGenesis(source);
    for (const [i, record] of (await rawChain(source)).entries()) {
      const { hash: _hash, mac, ...body } = record;
      const relabelled = { ...body, tenantId: target, prevHash };
      const hash = chainHash(canonicalRecord(relabelled as never));
      await putRawAuditRecord(store.table, target, i + 1, { ...relabelled, hash, mac });
      prevHash = hash;
    }
    const result = await verify(target);
    expect(result).toMatchObject({ intact: false, verifiedThrough: 0, break: { sequence: 1 } });
  });

  it("a MAC made for one scope does not match the same hash in another scope", () => {
    const key = new Uint8Array(randomKek());
    const hash = "a".repeat(64);
    const mac = chainMac(key, "acme", hash);
    expect(chainMacMatches(key, "acme", hash, mac)).toBe(true);
    expect(chainMacMatches(key, "globex", hash, mac)).toBe(false);
  });
});
