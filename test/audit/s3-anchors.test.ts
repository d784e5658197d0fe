import { QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sequenceBatch } from "../../functions/audit/sequence.ts";
import { chainHash, chainMac } from "../../shared/crypto/chain-keys.ts";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { canonicalRecord } from "../../shared/domain/audit-chain.ts";
import type { AuditEntry } from "../../shared/domain/audit-trail.ts";
import { anchorKey, S3AnchorLog } from "../../shared/storage/s3-anchor-log.ts";
import { createTable } from "../../shared/storage/table.ts";
import { streamEventOf } from "../../testing/dynamodb-stream.ts";
import { deleteRawItem, putRawItem } from "../../testing/faults.ts";
import { DUMMY_CREDENTIALS, randomKek, startHarness, startStore } from "../../testing/harness.ts";
import { type S3Endpoint, startS3Endpoint } from "../../testing/s3-endpoint.ts";

/**
 * Chains anchored in S3 as the functions do it on Lambda: the audit function's sequencer, fed stream
 * batches, anchors each chain's head after every batch (`AUDIT_ANCHOR_INTERVAL_SECONDS=0`, as its
 * template sets); the API's runtime verifies against the anchors and appends none. The S3 endpoint is
 * a stand-in (testing/s3-endpoint.ts): Object Lock, lifecycle rules and conditional-write enforcement
 * cannot run here, so what an account administrator can still do past them (delete markers from a
 * lifecycle `Expiration` rule, a put once the bucket policy is deleted) is made directly in the stand-in.
 * Every runtime has its own table client, its own S3 client and its own memory of chain heads, as
 * separate Lambda instances do.
 */
let store: Awaited<ReturnType<typeof startStore>>;
let s3: S3Endpoint;
const kek = randomKek();
const BUCKET = "strongbox-test-audit-anchors";
let tenants = 0;

beforeAll(async () => {
  [store, s3] = await Promise.all([startStore(), startS3Endpoint()]);
});

afterAll(async () => {
  await Promise.all([store.dynamo.close(), s3.close()]);
});

const anchorLog = () =>
  new S3AnchorLog({
    bucket: BUCKET,
    region: "us-east-1",
    endpoint: s3.endpoint,
    credentials: DUMMY_CREDENTIALS,
  });

async function instance(role: "sequencer" | "api") {
  const table = createTable(
    { endpoint: store.dynamo.endpoint, region: "us-east-1", credentials: DUMMY_CREDENTIALS },
    store.table.name,
  );
  const h = await startHarness({
    store: { dynamo: store.dynamo, table },
    keyring: new LocalKeyring({ active: kek, previous: [] }),
    env: {
      AUDIT_SEQUENCING: "deferred",
      ...(role === "sequencer" ? { AUDIT_ANCHOR_INTERVAL_SECONDS: "0" } : {}),
    },
    anchors: anchorLog(),
    anchorsReadOnly: role === "api",
  });
  return { h, table };
}

const entry = (tenantId: string, n: number): AuditEntry => ({
  tenantId,
  action: "secret.read",
  outcome: "success",
  actor: `reader-${n}`,
  role: "runner",
  requestId: `req-${tenantId}-${n}`,
  secretName: "db-password",
});

async function items(prefix: string, tenantId: string): Promise<Record<string, any>[]> {
  const result = await store.table.doc.send(
    new QueryCommand({
      TableName: store.table.name,
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
      ExpressionAttributeValues: { ":pk": `AUDIT#${tenantId}`, ":prefix": prefix },
      ConsistentRead: true,
    }),
  );
  return result.Items ?? [];
}

/** The anchors stored for a scope, by sequence: what S3 holds, read past the log. */
const storedAnchors = (tenantId: string) =>
  [...s3.objects(BUCKET)]
    .filter(([key]) => key.startsWith(`anchors/${tenantId}/`))
    .map(([, body]) => JSON.parse(body) as { sequence: number; hash: string })
    .sort((a, b) => a.sequence - b.sequence);

/** Records written by the API, then handed to the audit function as one stream batch. */
async function streamBatch(
  api: Awaited<ReturnType<typeof instance>>,
  tenantId: string,
  from: number,
  to: number,
) {
  for (let n = from; n < to; n += 1) await api.h.runtime.auditLog.record(entry(tenantId, n));
  return streamEventOf(await items("NEW#", tenantId));
}

/** A chain of 6 records in two blocks, each batch's head anchored in S3 by the audit function. */
async function anchoredChain() {
  tenants += 1;
  const tenantId = `s3-${tenants}`;
  const api = await instance("api");
  const sequencer = await instance("sequencer");
  for (const [from, to] of [
    [0, 3],
    [3, 6],
  ] as const) {
    const event = await streamBatch(api, tenantId, from, to);
    expect(await sequenceBatch(sequencer.h.runtime, event)).toEqual({ batchItemFailures: [] });
  }
  return { tenantId, api, sequencer };
}

describe("the audit function anchors to S3", () => {
  it("appends the chain's head after every stream batch, one object per anchor", async () => {
    const { tenantId } = await anchoredChain();
    const records = (await items("SEQ#", tenantId)).flatMap(
      (block) => block.records as { sequence: number; hash: string }[],
    );
    expect(records.map((record) => record.sequence)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(storedAnchors(tenantId)).toEqual(
      [records[2], records[5]].map((head) =>
        expect.objectContaining({ sequence: head?.sequence, hash: head?.hash }),
      ),
    );
    expect(s3.objects(BUCKET).has(anchorKey(tenantId, 6))).toBe(true);
    expect(await anchorLog().latest(tenantId)).toMatchObject({ scope: tenantId, sequence: 6 });
  });

  it("a redelivered batch anchors nothing new and fails nothing: the anchor it finds says the same", async () => {
    const { tenantId, api } = await anchoredChain();
    const puts = s3.calls.PutObject ?? 0;
    const fresh = await instance("sequencer");
    await api.h.runtime.auditLog.record(entry(tenantId, 6));
    const event = streamEventOf(await items("NEW#", tenantId));
    expect(await sequenceBatch(fresh.h.runtime, event)).toEqual({ batchItemFailures: [] });
    // Another fresh instance has no memory of what was anchored: its put meets the existing object.
    expect(await sequenceBatch((await instance("sequencer")).h.runtime, event)).toEqual({
      batchItemFailures: [],
    });
    expect(storedAnchors(tenantId).map((a) => a.sequence)).toEqual([3, 6, 7]);
    expect(s3.calls.PutObject).toBe(puts + 2);
  });

  it("the API's runtime chains on a read of the trail but appends no anchor; the next batch anchors that head", async () => {
    const { tenantId, api, sequencer } = await anchoredChain();
    const puts = s3.calls.PutObject ?? 0;
    const event = await streamBatch(api, tenantId, 6, 8);
    expect(await api.h.runtime.sequencer.catchUp(tenantId)).toMatchObject({ sequenced: 2 });
    expect(s3.calls.PutObject).toBe(puts);
    expect(await sequenceBatch(sequencer.h.runtime, event)).toEqual({ batchItemFailures: [] });
    expect(storedAnchors(tenantId).at(-1)).toMatchObject({ sequence: 8 });
  });
});

describe("verify against the S3 anchors", () => {
  it("reports a deleted tail as truncated, the caller naming no head and no instance remembering one", async () => {
    const { tenantId, sequencer } = await anchoredChain();
    const verifier = await instance("api");
    expect(await verifier.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({
      intact: true,
      records: 6,
      anchor: { sequence: 6 },
    });
    const last = (await items("SEQ#", tenantId)).at(-1) as Record<string, any>;
    await deleteRawItem(sequencer.table, { pk: last.pk, sk: last.sk });
    const cut = (last.records as { sequence: number }[])[0]?.sequence ?? 0;
    expect(cut).toBeGreaterThan(1);
    expect(await (await instance("api")).h.runtime.chainVerifier.verify(tenantId)).toMatchObject({
      intact: false,
      verifiedThrough: cut - 1,
      break: { reason: "truncated", sequence: cut },
    });
  });

  it("lists a chain deleted whole from its anchors and reports it truncated at record 1", async () => {
    const { tenantId, sequencer } = await anchoredChain();
    for (const block of await items("SEQ#", tenantId))
      await deleteRawItem(sequencer.table, { pk: block.pk, sk: block.sk });
    const verifier = await instance("api");
    expect(await verifier.h.runtime.chainVerifier.scopes()).toContain(tenantId);
    expect(await verifier.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({
      intact: false,
      verifiedThrough: 0,
      break: { reason: "truncated", sequence: 1 },
    });
  });

  it("reports an anchor whose body does not match its key as anchor_mismatch, after the records before it verify", async () => {
    const { tenantId } = await anchoredChain();
    // Another sequence's head put under sequence 9's key: whoever wrote it was not the sequencer.
    const [, sixth] = storedAnchors(tenantId);
    s3.putRaw(BUCKET, anchorKey(tenantId, 9), JSON.stringify({ ...sixth, scope: tenantId, time: "x" }));
    const result = await (await instance("api")).h.runtime.chainVerifier.verify(tenantId);
    expect(result).toMatchObject({
      intact: false,
      verifiedThrough: 6,
      break: { reason: "anchor_mismatch", sequence: 7 },
    });
    expect(result.anchor).toBeUndefined();
  });

  it("reports a cut tail as a break when a lifecycle rule has put delete markers over every anchor", async () => {
    const { tenantId, sequencer } = await anchoredChain();
    for (const sequence of [3, 6]) s3.expire(BUCKET, anchorKey(tenantId, sequence));
    expect(storedAnchors(tenantId)).toEqual([]);
    const last = (await items("SEQ#", tenantId)).at(-1) as Record<string, any>;
    await deleteRawItem(sequencer.table, { pk: last.pk, sk: last.sk });
    const cut = (last.records as { sequence: number }[])[0]?.sequence ?? 0;
    const result = await (await instance("api")).h.runtime.chainVerifier.verify(tenantId);
    // The locked first version of anchor 6 still says the chain reached 6.
    expect(result).toMatchObject({
      intact: false,
      verifiedThrough: cut - 1,
      break: { reason: "truncated", sequence: cut },
    });
    expect(result.anchor).toBeUndefined();
  });

  it("reports a hidden anchor as anchor_mismatch even where the table is whole", async () => {
    const { tenantId } = await anchoredChain();
    s3.expire(BUCKET, anchorKey(tenantId, 6));
    expect(await (await instance("api")).h.runtime.chainVerifier.verify(tenantId)).toMatchObject({
      intact: false,
      verifiedThrough: 5,
      break: { reason: "anchor_mismatch", sequence: 6 },
    });
  });

  it("lists and reports a chain deleted whole whose anchors are all behind delete markers", async () => {
    const { tenantId, sequencer } = await anchoredChain();
    for (const block of await items("SEQ#", tenantId))
      await deleteRawItem(sequencer.table, { pk: block.pk, sk: block.sk });
    for (const sequence of [3, 6]) s3.expire(BUCKET, anchorKey(tenantId, sequence));
    const verifier = await instance("api");
    expect(await verifier.h.runtime.chainVerifier.scopes()).toContain(tenantId);
    expect(await verifier.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({
      intact: false,
      verifiedThrough: 0,
      break: { reason: "truncated", sequence: 1 },
    });
  });

  it("reports a second version over the newest anchor's key as anchor_mismatch, the locked first version still checked", async () => {
    const { tenantId } = await anchoredChain();
    const [, sixth] = storedAnchors(tenantId);
    // An unconditional put, as once the bucket policy is deleted: a current version naming another hash.
    s3.putRaw(BUCKET, anchorKey(tenantId, 6), JSON.stringify({ ...sixth, hash: "f".repeat(64) }));
    expect(storedAnchors(tenantId).at(-1)).toMatchObject({ sequence: 6, hash: "f".repeat(64) });
    const result = await (await instance("api")).h.runtime.chainVerifier.verify(tenantId);
    expect(result).toMatchObject({
      intact: false,
      verifiedThrough: 5,
      break: { reason: "anchor_mismatch", sequence: 6 },
    });
    expect(result.anchor).toBeUndefined();
  });

  it("reports a rewritten tail as anchor_mismatch when a second version over the newest anchor matches it", async () => {
    const { tenantId, sequencer } = await anchoredChain();
    // Record 6 rewritten with a valid MAC (today's key, as someone holding the KEK derives it), and the
    // anchor's key given a current version naming the rewritten hash: every current object agrees.
    const block = (await items("SEQ#", tenantId)).at(-1) as Record<string, any>;
    const records = block.records as Record<string, unknown>[];
    const { hash: _hash, mac: _mac, ...body } = records.at(-1) as Record<string, unknown>;
    const rewritten = { ...body, actor: "someone-else" };
    const hash = chainHash(canonicalRecord(rewritten as never));
    const today = await new LocalKeyring({ active: kek, previous: [] }).chainKeys().current(new Date());
    const forged = { ...rewritten, hash, mac: chainMac(today.key, tenantId, hash) };
    await putRawItem(sequencer.table, { ...block, records: [...records.slice(0, -1), forged] });
    const [, sixth] = storedAnchors(tenantId);
    s3.putRaw(BUCKET, anchorKey(tenantId, 6), JSON.stringify({ ...sixth, hash }));
    expect(await (await instance("api")).h.runtime.chainVerifier.verify(tenantId)).toMatchObject({
      intact: false,
      verifiedThrough: 5,
      break: { reason: "anchor_mismatch", sequence: 6 },
    });
  });
});
