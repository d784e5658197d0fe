import { createHmac } from "node:crypto";
import { QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chainGenesis, chainHash } from "../../shared/crypto/chain-keys.ts";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { canonicalRecord } from "../../shared/domain/audit-chain.ts";
import { AuditRepository } from "../../shared/storage/audit-repository.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { seedChain } from "../../testing/audit-chains.ts";
import {
  auditRecordKey,
  chainBlockAppends,
  deleteRawItem,
  getRawAuditRecord,
  injectFault,
  putRawAuditRecord,
} from "../../testing/faults.ts";
import { type Harness, randomKek, startHarness, startStore } from "../../testing/harness.ts";

/*
 * Tampering is done the way an attacker with write access to the table would: raw DynamoDB calls on
 * the audit items, behind the service's back. Each case gets its own tenant, so its own chain.
 */

const kek = randomKek();
const newKeyring = () => new LocalKeyring({ active: kek, previous: [] });
let store: { dynamo: LocalDynamo; table: Table };
let h: Harness;
let admin: string;
let tenantCounter = 0;
const RECORDS = 8;

/** A fresh tenant whose chain holds exactly RECORDS records, from real API calls. */
async function freshChain(): Promise<string> {
  tenantCounter += 1;
  const tenant = `chain-${tenantCounter}`;
  await seedChain(h, admin, tenant, RECORDS);
  return tenant;
}

const verify = (tenant: string, harness = h) => harness.runtime.chainVerifier.verify(tenant);
const raw = (tenant: string, sequence: number) => getRawAuditRecord(store.table, tenant, sequence);

beforeAll(async () => {
  store = await startStore();
  h = await startHarness({ store, keyring: newKeyring() });
  admin = await h.token("admin");
});
afterAll(async () => {
  await store.dynamo.close();
});

describe("an untouched chain", () => {
  it("links every record to the one before it and verifies intact to its last sequence", async () => {
    const tenant = await freshChain();
    const first = await raw(tenant, 1);
    expect(first.prevHash).toBe(chainGenesis(tenant));
    for (let sequence = 2; sequence <= RECORDS; sequence += 1) {
      expect((await raw(tenant, sequence)).prevHash).toBe((await raw(tenant, sequence - 1)).hash);
    }
    expect(await verify(tenant)).toMatchObject({ intact: true, verifiedThrough: RECORDS, records: RECORDS });
  });

  it("the verify route answers 'intact up to sequence N' and records the verification after it", async () => {
    const tenant = await freshChain();
    const response = await h.call("GET", `/v1/tenants/${tenant}/audit/verify`, { token: admin });
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body.summary).toBe(`${tenant}: intact up to sequence ${RECORDS}`);
    expect(body.head).toEqual({ sequence: RECORDS, hash: (await raw(tenant, RECORDS)).hash });
    const record = await raw(tenant, RECORDS + 1);
    expect(record).toMatchObject({ action: "audit.verify", detail: `intact up to sequence ${RECORDS}` });
  });

  it("the existing listing still shows the newest record first, page by page", async () => {
    const tenant = await freshChain();
    const first = await (await h.call("GET", `/v1/tenants/${tenant}/audit?limit=3`, { token: admin })).json();
    expect(first.events.map((e: { sequence: number }) => e.sequence)).toEqual([8, 7, 6]);
    const next = await (
      await h.call("GET", `/v1/tenants/${tenant}/audit?limit=3&cursor=${first.nextCursor}`, { token: admin })
    ).json();
    expect(next.events.map((e: { sequence: number }) => e.sequence)).toEqual([5, 4, 3]);
  });

  it("a new instance with no memory of the head continues the chain where it ends", async () => {
    const tenant = await freshChain();
    const cold = await startHarness({ store, keyring: newKeyring() });
    const put = await cold.call("PUT", `/v1/tenants/${tenant}/secrets/cold`, {
      token: admin,
      body: { value: "x" },
    });
    expect(put.status).toBe(200);
    expect(await verify(tenant, cold)).toMatchObject({ intact: true, verifiedThrough: RECORDS + 2 });
    expect(await verify(tenant)).toMatchObject({ intact: true, verifiedThrough: RECORDS + 2 });
  });
});

describe("tampering is detected at the sequence where it happened", () => {
  it("an edited record breaks at its sequence: its content no longer matches its hash", async () => {
    const tenant = await freshChain();
    const record = await raw(tenant, 5);
    await putRawAuditRecord(store.table, tenant, 5, { ...record, actor: "someone-else" });
    const result = await verify(tenant);
    expect(result).toMatchObject({
      intact: false,
      verifiedThrough: 4,
      break: { sequence: 5, reason: "hash_mismatch" },
    });
    const response = await h.call("GET", `/v1/tenants/${tenant}/audit/verify`, { token: admin });
    expect((await response.json()).summary).toBe(
      `${tenant}: broken at sequence 5: the record's content does not match its hash: it was edited`,
    );
  });

  it("a deleted record breaks at its sequence: it is missing", async () => {
    const tenant = await freshChain();
    await deleteRawItem(store.table, auditRecordKey(tenant, 4));
    expect(await verify(tenant)).toMatchObject({
      intact: false,
      verifiedThrough: 3,
      break: { sequence: 4, reason: "missing" },
    });
  });

  it("two swapped records break at the first of them: it claims another place", async () => {
    const tenant = await freshChain();
    const third = await raw(tenant, 3);
    const sixth = await raw(tenant, 6);
    await putRawAuditRecord(store.table, tenant, 3, sixth);
    await putRawAuditRecord(store.table, tenant, 6, third);
    expect(await verify(tenant)).toMatchObject({
      intact: false,
      verifiedThrough: 2,
      break: { sequence: 3, reason: "misplaced" },
    });
  });

  it("swapped records renumbered to fit, with every hash and link recomputed, break at the MAC", async () => {
    const tenant = await freshChain();
    const records = await Promise.all(Array.from({ length: RECORDS }, (_, i) => raw(tenant, i + 1)));
    const reordered = records.map((record, i) => (i === 2 ? records[5] : i === 5 ? records[2] : record));
    await rewriteFrom(tenant, reordered, 3);
    expect(await verify(tenant)).toMatchObject({
      intact: false,
      verifiedThrough: 2,
      break: { sequence: 3, reason: "mac_mismatch" },
    });
  });

  it("an edit with every later hash and link recomputed, but no MAC key, breaks at the edit", async () => {
    const tenant = await freshChain();
    const records = await Promise.all(Array.from({ length: RECORDS }, (_, i) => raw(tenant, i + 1)));
    records[4] = { ...records[4], reason: "nothing to see here", actor: "someone-else" };
    await rewriteFrom(tenant, records, 5);
    // The recomputed chain is consistent as a plain hash chain: every link matches.
    for (let sequence = 6; sequence <= RECORDS; sequence += 1) {
      expect((await raw(tenant, sequence)).prevHash).toBe((await raw(tenant, sequence - 1)).hash);
    }
    expect(await verify(tenant)).toMatchObject({
      intact: false,
      verifiedThrough: 4,
      break: { sequence: 5, reason: "mac_mismatch" },
    });
  });

  it("recomputed MACs under a key of the attacker's own break at the first forged record", async () => {
    const tenant = await freshChain();
    const records = await Promise.all(Array.from({ length: RECORDS }, (_, i) => raw(tenant, i + 1)));
    records[6] = { ...records[6], detail: "forged" };
    const attackerKey = randomKek();
    await rewriteFrom(tenant, records, 7, (hash) =>
      createHmac("sha256", attackerKey).update(hash).digest("hex"),
    );
    expect(await verify(tenant)).toMatchObject({ break: { sequence: 7, reason: "mac_mismatch" } });
  });

  it("a record that names an audit key the service does not hold breaks at that record", async () => {
    const tenant = await freshChain();
    const records = await Promise.all(Array.from({ length: RECORDS }, (_, i) => raw(tenant, i + 1)));
    records[1] = { ...records[1], macKeyRef: "local:kek-0000000000000000:2026-01-01" };
    await rewriteFrom(tenant, records, 2);
    expect(await verify(tenant)).toMatchObject({ break: { sequence: 2, reason: "unknown_mac_key" } });
  });

  it("a deleted tail is caught by the instance that appended it, and not by one that never saw it", async () => {
    const tenant = await freshChain();
    await deleteRawItem(store.table, auditRecordKey(tenant, RECORDS));
    await deleteRawItem(store.table, auditRecordKey(tenant, RECORDS - 1));
    expect(await verify(tenant)).toMatchObject({
      intact: false,
      verifiedThrough: RECORDS - 2,
      break: { sequence: RECORDS - 1, reason: "truncated" },
    });
    // The limit of any in-database chain, stated in the README: only an outside head shows truncation.
    const cold = await startHarness({ store, keyring: newKeyring() });
    expect(await verify(tenant, cold)).toMatchObject({ intact: true, verifiedThrough: RECORDS - 2 });
  });

  it("a chain verified by a service with another KEK does not verify at all", async () => {
    const tenant = await freshChain();
    const stranger = await startHarness({
      store,
      keyring: new LocalKeyring({ active: randomKek(), previous: [] }),
    });
    expect(await verify(tenant, stranger)).toMatchObject({
      intact: false,
      verifiedThrough: 0,
      break: { sequence: 1, reason: "unknown_mac_key" },
    });
  });
});

/**
 * Rewrites records from `fromSequence` on as an attacker without the MAC key would: every sequence,
 * link and hash made consistent again, and the MAC either left as it was or made with `forgeMac`.
 */
async function rewriteFrom(
  tenant: string,
  records: (Record<string, any> | undefined)[],
  fromSequence: number,
  forgeMac?: (hash: string) => string,
): Promise<void> {
  let prevHash = records[fromSequence - 2]?.hash ?? chainGenesis(tenant);
  for (let sequence = fromSequence; sequence <= records.length; sequence += 1) {
    const { hash: _hash, mac, ...body } = records[sequence - 1] as Record<string, any>;
    const rewritten = { ...body, sequence, prevHash };
    const hash = chainHash(canonicalRecord(rewritten as any));
    await putRawAuditRecord(store.table, tenant, sequence, {
      ...rewritten,
      hash,
      mac: forgeMac === undefined ? mac : forgeMac(hash),
    });
    prevHash = hash;
  }
}

describe("concurrent appends from several instances on one table", () => {
  it("leave one unbroken chain holding every record, with no sequence number used twice", async () => {
    const tenant = await freshChain();
    const instances = await Promise.all(
      Array.from({ length: 4 }, () => startHarness({ store, keyring: newKeyring() })),
    );
    const PER_INSTANCE = 25;
    const appended = await Promise.all(
      instances.flatMap((instance, i) =>
        Array.from({ length: PER_INSTANCE }, (_, n) =>
          instance.runtime.chainWriter.append({
            tenantId: tenant,
            action: "secret.read",
            outcome: "success",
            actor: `instance-${i}`,
            role: "runner",
            requestId: `req-${i}-${n}`,
            time: new Date().toISOString(),
          }),
        ),
      ),
    );
    const sequences = appended.map((record) => record.sequence).sort((a, b) => a - b);
    const total = instances.length * PER_INSTANCE;
    expect(sequences).toEqual(Array.from({ length: total }, (_, i) => RECORDS + 1 + i));
    for (const instance of [h, ...instances]) {
      expect(await verify(tenant, instance)).toMatchObject({
        intact: true,
        verifiedThrough: RECORDS + total,
        records: RECORDS + total,
      });
    }
    const stored: string[] = [];
    for await (const { record } of new AuditRepository(store.table).walk(tenant))
      stored.push(record.requestId);
    expect(new Set(stored.slice(RECORDS)).size).toBe(total);
    expect(stored).toHaveLength(RECORDS + total);
  });
});

describe("group commit within one instance", () => {
  const readEvent = (tenant: string, n: number) => ({
    tenantId: tenant,
    action: "secret.read" as const,
    outcome: "success" as const,
    actor: "group-commit",
    role: "runner" as const,
    requestId: `group-${n}`,
    time: new Date().toISOString(),
  });

  async function blockCount(tenant: string): Promise<number> {
    const result = await store.table.doc.send(
      new QueryCommand({
        TableName: store.table.name,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": `AUDIT#${tenant}` },
        Select: "COUNT",
      }),
    );
    return result.Count ?? 0;
  }

  it("records that arrive while a write is in flight go out together as one block, each with its own place", async () => {
    const tenant = await freshChain();
    const appended = await Promise.all(
      Array.from({ length: 40 }, (_, n) => h.runtime.chainWriter.append(readEvent(tenant, n))),
    );
    expect(appended.map((record) => record.sequence)).toEqual(
      Array.from({ length: 40 }, (_, n) => RECORDS + 1 + n),
    );
    // The first record goes alone; the 39 that queued behind it share the next write.
    expect(await blockCount(tenant)).toBe(RECORDS + 2);
    expect(await verify(tenant)).toMatchObject({ intact: true, verifiedThrough: RECORDS + 40 });
  });

  it("listing and export page through records inside blocks without gaps or repeats", async () => {
    const tenant = await freshChain();
    await Promise.all(
      Array.from({ length: 25 }, (_, n) => h.runtime.chainWriter.append(readEvent(tenant, n))),
    );
    const seen: number[] = [];
    let cursor: string | undefined;
    do {
      const query = `?limit=3&action=secret.read${cursor === undefined ? "" : `&cursor=${cursor}`}`;
      const body = await (
        await h.call("GET", `/v1/tenants/${tenant}/audit${query}`, { token: admin })
      ).json();
      seen.push(...body.events.map((e: { sequence: number }) => e.sequence));
      cursor = body.nextCursor;
    } while (cursor !== undefined);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, n) => RECORDS + 25 - n));
    const exported = await h.call("GET", `/v1/tenants/${tenant}/audit/export?action=secret.read`, {
      token: admin,
    });
    const lines = exported.text
      .trimEnd()
      .split("\n")
      .slice(0, -1) // the trailer
      .map((line) => JSON.parse(line).sequence);
    expect(lines).toEqual(Array.from({ length: 25 }, (_, n) => RECORDS + 1 + n));
  });

  it("a block that cannot be written fails every caller in it, and the chain goes on intact afterwards", async () => {
    const tenant = await freshChain();
    const fault = injectFault(store.table, chainBlockAppends);
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, n) => h.runtime.chainWriter.append(readEvent(tenant, n))),
    );
    fault.remove();
    expect(results.map((result) => result.status)).toEqual(Array(10).fill("rejected"));
    expect(await verify(tenant)).toMatchObject({ intact: true, verifiedThrough: RECORDS });
    await h.runtime.chainWriter.append(readEvent(tenant, 99));
    expect(await verify(tenant)).toMatchObject({ intact: true, verifiedThrough: RECORDS + 1 });
  });
});
