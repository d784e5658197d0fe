import { hkdfSync } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CLOCK_SKEW_MS,
  chainGenesis,
  chainHash,
  chainMac,
  chainMacMatches,
} from "../../shared/crypto/chain-keys.ts";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { canonicalRecord } from "../../shared/domain/audit-chain.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { seedChain } from "../../testing/audit-chains.ts";
import {
  auditRecordKey,
  deleteRawItem,
  getRawAuditRecord,
  injectFault,
  putRawAuditRecord,
  putRawItem,
} from "../../testing/faults.ts";
import { type Harness, randomKek, startHarness, startStore } from "../../testing/harness.ts";

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
  await seedChain(h, admin, tenant, RECORDS);
  return tenant;
}

const verify = (scope: string) => h.runtime.chainVerifier.verify(scope);
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

const DAY_MS = 24 * 3600 * 1000;
const dayOf = (at: number) => new Date(at).toISOString().slice(0, 10);

/**
 * The key of any day, as someone who copied one day's key (or the KEK) out of a process could make
 * it: the local keeper's derivation, done outside the service, so no service check is on its path.
 */
async function leakedKey(at: number): Promise<{ ref: string; key: Uint8Array }> {
  const today = await newKeyring().chainKeys().current(new Date());
  const ref = `${today.ref.slice(0, today.ref.lastIndexOf(":"))}:${dayOf(at)}`;
  return { ref, key: new Uint8Array(hkdfSync("sha256", kek, "strongbox/audit-chain/v1", ref, 32)) };
}

/**
 * Rewrites records from `fromSequence` on with a leaked day key: each record dated `time(sequence)`,
 * named as made with that day's key, every hash, link and MAC recomputed and valid under it.
 */
async function rewriteWithLeakedKey(
  scope: string,
  fromSequence: number,
  time: (sequence: number) => number,
): Promise<void> {
  const records = await rawChain(scope);
  let prevHash = records[fromSequence - 2]?.hash ?? chainGenesis(scope);
  for (let sequence = fromSequence; sequence <= records.length; sequence += 1) {
    const { hash: _hash, mac: _mac, ...body } = records[sequence - 1] as Record<string, unknown>;
    const leaked = await leakedKey(time(sequence));
    const rewritten = {
      ...body,
      time: new Date(time(sequence)).toISOString(),
      macKeyRef: leaked.ref,
      prevHash,
    };
    const hash = chainHash(canonicalRecord(rewritten as never));
    await putRawAuditRecord(store.table, scope, sequence, {
      ...rewritten,
      hash,
      mac: chainMac(leaked.key, scope, hash),
    });
    prevHash = hash;
  }
}

describe("a day's key authenticates only that day's records", () => {
  it("records of today re-keyed with a leaked key of another day break as key_day_mismatch", async () => {
    const tenant = await freshChain();
    const yesterday = await leakedKey(Date.now() - DAY_MS);
    const records = await rawChain(tenant);
    let prevHash = records[1]?.hash;
    for (let sequence = 3; sequence <= RECORDS; sequence += 1) {
      const { hash: _hash, mac: _mac, ...body } = records[sequence - 1] as Record<string, unknown>;
      const rewritten = { ...body, detail: "forged", macKeyRef: yesterday.ref, prevHash };
      const hash = chainHash(canonicalRecord(rewritten as never));
      const mac = chainMac(yesterday.key, tenant, hash);
      await putRawAuditRecord(store.table, tenant, sequence, { ...rewritten, hash, mac });
      prevHash = hash;
    }
    expect(await verify(tenant)).toMatchObject({
      intact: false,
      verifiedThrough: 2,
      break: { sequence: 3, reason: "key_day_mismatch" },
    });
  });

  it("a tail rewritten as records of an earlier day breaks where the day goes backwards", async () => {
    const tenant = await freshChain();
    const lastWeek = Date.now() - 7 * DAY_MS;
    await rewriteWithLeakedKey(tenant, 4, (sequence) => lastWeek + sequence);
    expect(await verify(tenant)).toMatchObject({
      intact: false,
      verifiedThrough: 3,
      break: { sequence: 4, reason: "day_regressed" },
    });
  });

  it("records dated in the future, with a key derived for that day, break as future_dated", async () => {
    const tenant = await freshChain();
    const future = Date.now() + 3 * DAY_MS;
    await rewriteWithLeakedKey(tenant, 5, (sequence) => future + sequence);
    expect(await verify(tenant)).toMatchObject({
      intact: false,
      verifiedThrough: 4,
      break: { sequence: 5, reason: "future_dated" },
    });
  });

  it("the keeper refuses to derive a key for a day that has not come", async () => {
    const keys = newKeyring().chainKeys();
    const { ref } = await keys.current(new Date());
    const prefix = ref.slice(0, ref.lastIndexOf(":"));
    expect(await keys.forRef(`${prefix}:${dayOf(Date.now() + CLOCK_SKEW_MS + 2 * DAY_MS)}`)).toBeUndefined();
    expect(await keys.forRef(`${prefix}:${dayOf(Date.now() - DAY_MS)}`)).toBeInstanceOf(Uint8Array);
  });

  it("a record stamped before midnight that lands after one stamped after it takes that one's time", async () => {
    counter += 1;
    const scope = `midnight-${counter}`;
    const midnight = Date.UTC(2026, 0, 2);
    const event = (time: number, n: number) => ({
      tenantId: scope,
      action: "secret.read" as const,
      outcome: "success" as const,
      actor: "midnight",
      role: "runner" as const,
      requestId: `midnight-${n}`,
      time: new Date(time).toISOString(),
    });
    await h.runtime.chainWriter.append(event(midnight + 5, 1));
    const late = await h.runtime.chainWriter.append(event(midnight - 5, 2));
    expect(late.time).toBe(new Date(midnight + 5).toISOString());
    expect(await verify(scope)).toMatchObject({ intact: true, verifiedThrough: 2 });
  });
});

describe("a malformed stored record", () => {
  it.each([
    ["null", null],
    ["a number", 42],
    ["a record without its chain fields", { tenantId: "x", action: "secret.read" }],
  ])("stored as %s, is reported as a malformed break at its place, not a 500", async (_label, junk) => {
    const tenant = await freshChain();
    await putRawItem(store.table, { ...auditRecordKey(tenant, 3), records: [junk] });
    const response = await h.call("GET", `/v1/tenants/${tenant}/audit/verify`, { token: admin });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      intact: false,
      verifiedThrough: 2,
      break: { sequence: 3, reason: "malformed" },
    });
    const listing = await h.call("GET", `/v1/tenants/${tenant}/audit`, { token: admin });
    expect(listing.status).toBe(200);
    const exported = await h.call("GET", `/v1/tenants/${tenant}/audit/export`, { token: admin });
    expect(exported.status).toBe(200);
    expect(exported.text).toContain('"sequence":2');
  });
});

describe("an export tells complete from cut short", () => {
  const lines = (text: string) =>
    text
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));

  it("a complete export ends with a trailer naming its record count, last sequence and last hash", async () => {
    const tenant = await freshChain();
    const response = await h.call("GET", `/v1/tenants/${tenant}/audit/export`, { token: admin });
    const all = lines(response.text);
    const records = all.slice(0, -1);
    // The export's own record (7) is written once its page is read, before it goes out: the next has it.
    expect(records.map((record) => record.sequence)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(all.at(-1)).toEqual({
      end: true,
      records: 6,
      lastSequence: 6,
      lastHash: (await raw(tenant, 6)).hash,
    });
    expect(await raw(tenant, 7)).toMatchObject({
      action: "audit.export",
      outcome: "success",
      detail: "records=6 lastSequence=6",
    });
  });

  it("an export matching nothing is the trailer alone", async () => {
    const tenant = await freshChain();
    const response = await h.call("GET", `/v1/tenants/${tenant}/audit/export?action=kms.call`, {
      token: admin,
    });
    expect(lines(response.text)).toEqual([{ end: true, records: 0 }]);
  });

  it("an export whose store read fails answers 503 and is recorded as a failure, never as a success", async () => {
    const tenant = await freshChain();
    const fault = injectFault(store.table, (call) => call.commandName === "QueryCommand");
    const response = await h
      .call("GET", `/v1/tenants/${tenant}/audit/export`, { token: admin })
      .finally(() => fault.remove());
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({
      error: { code: "store_unavailable", message: expect.stringContaining("DynamoDB Query failed") },
    });
    expect(fault.refused).toBeGreaterThan(0);
    const record = await raw(tenant, 7);
    expect(record).toMatchObject({
      action: "audit.export",
      outcome: "failure",
      detail: "failed=store_unavailable",
    });
    expect(await h.runtime.chainVerifier.verify(tenant)).toMatchObject({ intact: true, verifiedThrough: 7 });
  });
});

describe("verify while the chain grows", () => {
  it("records this instance appends during the walk are not reported as a truncated tail", async () => {
    const tenant = await freshChain();
    // Holds back the walk's answer (read already done) until the appends below are stored.
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let walkRead: () => void = () => undefined;
    const walked = new Promise<void>((resolve) => {
      walkRead = resolve;
    });
    let held = false;
    const name = "strongbox-test-hold-walk";
    store.table.doc.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        if (!held && context.commandName === "QueryCommand") {
          held = true;
          walkRead();
          await gate;
        }
        return result;
      },
      { step: "initialize", name },
    );
    try {
      const verification = verify(tenant);
      await walked;
      for (let n = 0; n < 3; n += 1) {
        await h.runtime.chainWriter.append({
          tenantId: tenant,
          action: "secret.read",
          outcome: "success",
          actor: "during-walk",
          role: "runner",
          requestId: `during-${n}`,
          time: new Date().toISOString(),
        });
      }
      release();
      expect(await verification).toMatchObject({ intact: true, verifiedThrough: RECORDS });
    } finally {
      release();
      store.table.doc.middlewareStack.remove(name);
    }
    expect(await verify(tenant)).toMatchObject({ intact: true, verifiedThrough: RECORDS + 3 });
  });
});

describe("verify held to an expected head", () => {
  it("reports truncated when the stored chain falls short of the expected head, disagrees at it, and intact when it holds", async () => {
    const tenant = await freshChain();
    const head = await raw(tenant, RECORDS);
    await deleteRawItem(store.table, auditRecordKey(tenant, RECORDS));
    // An instance that never appended to this chain: only the expected head can show the cut.
    const cold = await startHarness({ store, keyring: newKeyring() });
    const verifyRoute = async (query: string) =>
      (await cold.call("GET", `/v1/tenants/${tenant}/audit/verify?${query}`, { token: admin })).json();
    expect(await verifyRoute("")).toMatchObject({ intact: true, verifiedThrough: RECORDS - 1 });
    expect(await verifyRoute(`expectSequence=${RECORDS}&expectHash=${head.hash}`)).toMatchObject({
      intact: false,
      verifiedThrough: RECORDS - 1,
      break: { sequence: RECORDS, reason: "truncated" },
    });
    expect(await verifyRoute(`expectSequence=3&expectHash=${"f".repeat(64)}`)).toMatchObject({
      intact: false,
      verifiedThrough: 2,
      break: { sequence: 3, reason: "truncated" },
    });
    const third = await raw(tenant, 3);
    expect(await verifyRoute(`expectSequence=3&expectHash=${third.hash}`)).toMatchObject({ intact: true });
  });

  it.each([
    ["a sequence without a hash", "expectSequence=3"],
    ["a hash that is not 64 hex digits", `expectSequence=3&expectHash=${"g".repeat(64)}`],
    ["a sequence that is not a positive integer", `expectSequence=0&expectHash=${"a".repeat(64)}`],
  ])("refuses %s with 400", async (_label, query) => {
    const response = await h.call("GET", `/v1/audit/verify?${query}`, { token: admin });
    expect(response.status).toBe(400);
    expect((await response.json()).error.code).toBe("invalid_request");
  });
});
