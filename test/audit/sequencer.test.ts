import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sequenceBatch } from "../../functions/audit/sequence.ts";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import type { AuditEntry } from "../../shared/domain/audit-trail.ts";
import { StreamSequencer } from "../../shared/services/audit/stream-sequencer.ts";
import { AnchorFile } from "../../shared/storage/anchor-file.ts";
import { AuditStreamFile } from "../../shared/storage/audit-stream-file.ts";
import { createTable, type Table } from "../../shared/storage/table.ts";
import { streamEventOf } from "../../testing/dynamodb-stream.ts";
import { deleteRawItem, injectFault, putRawItem } from "../../testing/faults.ts";
import {
  DUMMY_CREDENTIALS,
  type Harness,
  randomKek,
  startHarness,
  startStore,
} from "../../testing/harness.ts";

/**
 * The deferred audit path as `npm start` runs it: each record is written under its own key and to
 * the local stream file, and a sequencer chains it later. Every instance here is a runtime of its own
 * (its own memory of chain heads) on its own SDK client, as separate Lambda instances are.
 */
let store: Awaited<ReturnType<typeof startStore>>;
let dir: string;
const kek = randomKek();
let tenantCount = 0;

beforeAll(async () => {
  store = await startStore();
  dir = mkdtempSync(join(tmpdir(), "strongbox-sequencer-"));
});

afterAll(async () => {
  await store.dynamo.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Instance {
  readonly h: Harness;
  readonly table: Table;
}

/** A service instance on its own client; all of a test's instances share its stream and anchors. */
async function instance(stream: AuditStreamFile, anchors: AnchorFile, env: Record<string, string> = {}) {
  const table = createTable(
    { endpoint: store.dynamo.endpoint, region: "us-east-1", credentials: DUMMY_CREDENTIALS },
    store.table.name,
  );
  const h = await startHarness({
    store: { dynamo: store.dynamo, table },
    keyring: new LocalKeyring({ active: kek, previous: [] }),
    env: { AUDIT_SEQUENCING: "deferred", ...env },
    auditWitness: stream,
    anchors,
  });
  return { h, table } satisfies Instance;
}

function files(name: string) {
  return {
    stream: new AuditStreamFile(join(dir, `${name}.jsonl`)),
    anchors: new AnchorFile(join(dir, `${name}-anchors.jsonl`)),
  };
}

const scope = () => {
  tenantCount += 1;
  return `seq-${tenantCount}`;
};

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

/** Every chained record's request id, in chain order. */
async function chainedRequestIds(tenantId: string): Promise<string[]> {
  const blocks = await items("SEQ#", tenantId);
  return blocks.flatMap((block) => (block.records as { requestId: string }[]).map((r) => r.requestId));
}

const sorted = (values: readonly string[]) => [...values].sort();

describe("the read path", () => {
  it("writes one record under its own key before answering, and chains nothing until a sequencer runs", async () => {
    const { stream, anchors } = files("read-path");
    const a = await instance(stream, anchors);
    const tenantId = scope();
    await a.h.runtime.auditLog.record(entry(tenantId, 1));
    const waiting = await items("NEW#", tenantId);
    expect(waiting).toHaveLength(1);
    expect(waiting[0]?.record).toMatchObject({ requestId: `req-${tenantId}-1`, id: expect.any(String) });
    expect(await items("SEQ#", tenantId)).toEqual([]);

    await new StreamSequencer(stream, a.h.runtime.sequencer, a.h.runtime.logger).drain();
    expect(await chainedRequestIds(tenantId)).toEqual([`req-${tenantId}-1`]);
    expect(await items("NEW#", tenantId)).toEqual([]);
    expect(await a.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({ intact: true, records: 1 });
  });

  it("fails closed: a record that cannot be written refuses the read, and nothing is left waiting", async () => {
    const { stream, anchors } = files("fail-closed");
    const a = await instance(stream, anchors);
    const admin = await a.h.token("admin");
    const tenantId = scope();
    expect((await a.h.call("POST", "/v1/tenants", { token: admin, body: { tenantId } })).status).toBe(201);
    expect(
      (await a.h.call("PUT", `/v1/tenants/${tenantId}/secrets/k`, { token: admin, body: { value: "v" } }))
        .status,
    ).toBe(200);
    const fault = injectFault(a.table, (call) => call.commandName === "PutItemCommand");
    const read = await a.h.call("GET", `/v1/tenants/${tenantId}/secrets/k`, {
      token: admin,
      headers: { "x-audit-reason": "test" },
    });
    fault.remove();
    expect(read.status).toBe(503);
    expect(read.text).not.toContain('"value"');
  });
});

describe("crash recovery", () => {
  const RECORDS = 10;
  const BATCH = 3;

  // A sequencer that dies after its k-th DynamoDB write (a block put or a batch of deletes), at
  // every k from none to past the end: a fresh one takes over from the stream's checkpoint.
  it("a batch whose records could not leave the queue holds the checkpoint, though later batches were chained and cleared", async () => {
    const { stream, anchors } = files("clear-fails");
    const writer = await instance(stream, anchors);
    const tenantId = scope();
    for (let n = 0; n < RECORDS; n += 1) await writer.h.runtime.auditLog.record(entry(tenantId, n));
    const doomed = await instance(stream, anchors);
    let clears = 0;
    // Only the first batch's clearing fails; the batches after it are chained (and cleared) meanwhile.
    const fault = injectFault(
      doomed.table,
      (call) => call.commandName === "BatchWriteItemCommand" && ++clears === 1,
    );
    await expect(
      new StreamSequencer(stream, doomed.h.runtime.sequencer, doomed.h.runtime.logger, BATCH).drain(),
    ).rejects.toThrow();
    fault.remove();
    expect(clears).toBeGreaterThan(1);
    expect(stream.checkpoint()).toBe(0);
    expect(await chainedRequestIds(tenantId)).toHaveLength(RECORDS);

    const heir = await instance(stream, anchors);
    await new StreamSequencer(stream, heir.h.runtime.sequencer, heir.h.runtime.logger, BATCH).drain();
    expect(sorted(await chainedRequestIds(tenantId))).toEqual(
      sorted(Array.from({ length: RECORDS }, (_, n) => `req-${tenantId}-${n}`)),
    );
    expect(await items("NEW#", tenantId)).toEqual([]);
    expect(stream.checkpoint()).toBeGreaterThan(0);
    expect(await heir.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({ intact: true });
  });

  it.each(Array.from({ length: 10 }, (_, k) => k))(
    "a sequencer that dies after %i writes loses nothing and chains nothing twice",
    async (k) => {
      const { stream, anchors } = files(`crash-${k}`);
      const writer = await instance(stream, anchors);
      const tenantId = scope();
      const other = scope();
      for (let n = 0; n < RECORDS; n += 1) {
        await writer.h.runtime.auditLog.record(entry(n % 3 === 2 ? other : tenantId, n));
      }
      const doomed = await instance(stream, anchors);
      let writes = 0;
      injectFault(
        doomed.table,
        (call) =>
          (call.commandName === "PutItemCommand" || call.commandName === "BatchWriteItemCommand") &&
          ++writes > k,
      );
      await new StreamSequencer(stream, doomed.h.runtime.sequencer, doomed.h.runtime.logger, BATCH)
        .drain()
        .catch(() => undefined);

      const heir = await instance(stream, anchors);
      await new StreamSequencer(stream, heir.h.runtime.sequencer, heir.h.runtime.logger, BATCH).drain();
      const written = Array.from({ length: RECORDS }, (_, n) => `req-${n % 3 === 2 ? other : tenantId}-${n}`);
      const chained = [...(await chainedRequestIds(tenantId)), ...(await chainedRequestIds(other))];
      expect(sorted(chained)).toEqual(sorted(written));
      expect(await items("NEW#", tenantId)).toEqual([]);
      expect(await items("NEW#", other)).toEqual([]);
      for (const s of [tenantId, other]) {
        expect(await heir.h.runtime.chainVerifier.verify(s)).toMatchObject({ intact: true });
      }
    },
  );
});

describe("two sequencers at once", () => {
  it("a batch delivered to two sequencers at the same time leaves one chain holding each record once", async () => {
    const { stream, anchors } = files("two");
    const writer = await instance(stream, anchors);
    const tenantId = scope();
    for (let n = 0; n < 40; n += 1) await writer.h.runtime.auditLog.record(entry(tenantId, n));
    const [a, b] = [await instance(stream, anchors), await instance(stream, anchors)];
    const images = stream.read(0, 1000).images;
    // The same batch, twice, at once: a redelivered stream batch racing the first delivery.
    const [first, second] = await Promise.all([
      a.h.runtime.sequencer.integrate(images),
      b.h.runtime.sequencer.integrate(images),
    ]);
    expect(first.sequenced + second.sequenced).toBe(40);
    expect(first.duplicates + second.duplicates).toBe(40);
    const chained = await chainedRequestIds(tenantId);
    expect(sorted(chained)).toEqual(sorted(Array.from({ length: 40 }, (_, n) => `req-${tenantId}-${n}`)));
    expect(await a.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({ intact: true, records: 40 });
  });
});

describe("a fleet reading one tenant", () => {
  it("every read's record appears in the verified chain exactly once", async () => {
    const { stream, anchors } = files("fleet");
    const fleet = await Promise.all(Array.from({ length: 6 }, () => instance(stream, anchors)));
    const first = fleet[0] as Instance;
    const admin = await first.h.token("admin");
    const tenantId = scope();
    expect((await first.h.call("POST", "/v1/tenants", { token: admin, body: { tenantId } })).status).toBe(
      201,
    );
    expect(
      (await first.h.call("PUT", `/v1/tenants/${tenantId}/secrets/k`, { token: admin, body: { value: "v" } }))
        .status,
    ).toBe(200);
    const runner = await first.h.token("runner", [tenantId]);
    // A sequencer runs throughout, as in `npm start`, while every instance reads back to back.
    const sequencer = new StreamSequencer(stream, first.h.runtime.sequencer, first.h.runtime.logger);
    sequencer.start(20);
    const requestIds: string[] = [];
    await Promise.all(
      fleet.map(async (one) => {
        for (let n = 0; n < 8; n += 1) {
          const read = await one.h.call("GET", `/v1/tenants/${tenantId}/secrets/k`, {
            token: runner,
            headers: { "x-audit-reason": "fleet" },
          });
          expect(read.status).toBe(200);
          requestIds.push(read.headers.get("x-request-id") as string);
        }
      }),
    );
    await sequencer.stop();
    const blocks = await items("SEQ#", tenantId);
    const reads = blocks
      .flatMap((block) => block.records as { action: string; requestId: string }[])
      .filter((record) => record.action === "secret.read")
      .map((record) => record.requestId);
    expect(sorted(reads)).toEqual(sorted(requestIds));
    expect(new Set(reads).size).toBe(48);
    expect(await first.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({ intact: true });
  });
});

describe("tampering with the queue and the chain", () => {
  it("a waiting record deleted from the table before it was chained is chained from the stream anyway", async () => {
    const { stream, anchors } = files("deleted-waiting");
    const a = await instance(stream, anchors);
    const tenantId = scope();
    for (let n = 0; n < 3; n += 1) await a.h.runtime.auditLog.record(entry(tenantId, n));
    const [victim] = await items("NEW#", tenantId);
    await deleteRawItem(a.table, { pk: victim?.pk, sk: victim?.sk });
    expect(await items("NEW#", tenantId)).toHaveLength(2);
    await new StreamSequencer(stream, a.h.runtime.sequencer, a.h.runtime.logger).drain();
    expect(sorted(await chainedRequestIds(tenantId))).toEqual(
      sorted([0, 1, 2].map((n) => `req-${tenantId}-${n}`)),
    );
    expect(await a.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({ intact: true, records: 3 });
  });

  it("a record forged into the queue without the audit key is refused by the sequencer and reported by verify", async () => {
    const { stream, anchors } = files("forged");
    const a = await instance(stream, anchors, { AUDIT_UNSEQUENCED_BOUND_SECONDS: "1" });
    const tenantId = scope();
    await a.h.runtime.auditLog.record(entry(tenantId, 0));
    const [genuine] = await items("NEW#", tenantId);
    const forged = { ...genuine?.record, actor: "someone-else", requestId: "forged" };
    const old = new Date(Date.now() - 60_000).toISOString();
    await putRawItem(store.table, {
      pk: `AUDIT#${tenantId}`,
      sk: `NEW#${old}#${forged.id}x`,
      record: { ...forged, time: old },
    });
    await a.h.runtime.sequencer.catchUp(tenantId);
    expect(await chainedRequestIds(tenantId)).toEqual([`req-${tenantId}-0`]);
    expect(await a.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({
      intact: false,
      break: { reason: "unsequenced", sequence: 2 },
    });
  });

  it("records left unsequenced past the bound are reported, and intact again once chained", async () => {
    const { stream, anchors } = files("unsequenced");
    const a = await instance(stream, anchors, { AUDIT_UNSEQUENCED_BOUND_SECONDS: "1" });
    const tenantId = scope();
    await a.h.runtime.auditLog.record(entry(tenantId, 0));
    expect(await a.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({ intact: true, records: 0 });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(await a.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({
      intact: false,
      break: { reason: "unsequenced", sequence: 1 },
    });
    await new StreamSequencer(stream, a.h.runtime.sequencer, a.h.runtime.logger).drain();
    expect(await a.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({ intact: true, records: 1 });
  });

  /** A chain of 6 records in blocks of 2, its head anchored, seen by a verifier with no memory of it. */
  async function anchoredChain(name: string) {
    const { stream, anchors } = files(name);
    const a = await instance(stream, anchors);
    const tenantId = scope();
    const sequencer = new StreamSequencer(stream, a.h.runtime.sequencer, a.h.runtime.logger, 2);
    for (let n = 0; n < 6; n += 1) await a.h.runtime.auditLog.record(entry(tenantId, n));
    await sequencer.drain();
    await a.h.runtime.sequencer.anchorDue(true);
    expect(await anchors.latest(tenantId)).toMatchObject({ scope: tenantId, sequence: 6 });
    const verifier = await instance(stream, anchors);
    return { tenantId, verifier, a };
  }

  it("a deleted tail is reported as truncated from the latest anchor, without the caller naming a head", async () => {
    const { tenantId, verifier, a } = await anchoredChain("tail");
    expect(await verifier.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({
      intact: true,
      records: 6,
    });
    const last = (await items("SEQ#", tenantId)).at(-1) as Record<string, any>;
    await deleteRawItem(a.table, { pk: last.pk, sk: last.sk });
    const cut = Number(String(last.sk).slice("SEQ#".length));
    expect(cut).toBeGreaterThan(1);
    expect(await verifier.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({
      intact: false,
      verifiedThrough: cut - 1,
      break: { reason: "truncated", sequence: cut },
    });
  });

  it("a chain deleted whole is still listed and reported as truncated at record 1", async () => {
    const { tenantId, verifier, a } = await anchoredChain("whole");
    for (const block of await items("SEQ#", tenantId))
      await deleteRawItem(a.table, { pk: block.pk, sk: block.sk });
    expect(await verifier.h.runtime.chainVerifier.scopes()).toContain(tenantId);
    expect(await verifier.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({
      intact: false,
      verifiedThrough: 0,
      break: { reason: "truncated", sequence: 1 },
    });
  });

  it("a tail deleted and written anew from the cut is reported where it departs from the anchor", async () => {
    const { tenantId, verifier, a } = await anchoredChain("rewritten");
    const blocks = await items("SEQ#", tenantId);
    for (const block of blocks.slice(-2)) await deleteRawItem(a.table, { pk: block.pk, sk: block.sk });
    // A fresh instance chains new records after the cut, reaching past the anchored sequence.
    const fresh = await instance(files("rewritten-2").stream, files("rewritten-2").anchors);
    for (let n = 0; n < 4; n += 1)
      await fresh.h.runtime.chainWriter.append({
        ...entry(tenantId, 10 + n),
        time: new Date().toISOString(),
      });
    expect(await verifier.h.runtime.chainVerifier.verify(tenantId)).toMatchObject({
      intact: false,
      break: { reason: "truncated", sequence: 6 },
    });
  });
});

describe("the audit function as the stream's sequencer", () => {
  it("chains a stream batch from its images, a record deleted from the table too, and a redelivery once", async () => {
    const { stream, anchors } = files("lambda");
    const a = await instance(stream, anchors);
    const tenantId = scope();
    for (let n = 0; n < 5; n += 1) await a.h.runtime.auditLog.record(entry(tenantId, n));
    const inserted = await items("NEW#", tenantId);
    // A table writer removes one before the stream's batch arrives; the stream still carries its insert.
    await deleteRawItem(a.table, { pk: inserted[0]?.pk, sk: inserted[0]?.sk });
    const event = streamEventOf(inserted);
    const sequencer = await instance(stream, anchors);
    expect(await sequenceBatch(sequencer.h.runtime, event)).toEqual({ batchItemFailures: [] });
    expect(await sequenceBatch((await instance(stream, anchors)).h.runtime, event)).toEqual({
      batchItemFailures: [],
    });
    expect(sorted(await chainedRequestIds(tenantId))).toEqual(
      sorted([0, 1, 2, 3, 4].map((n) => `req-${tenantId}-${n}`)),
    );
    expect(await items("NEW#", tenantId)).toEqual([]);
  });

  it("hands a batch it cannot chain back from its first record, for Lambda to deliver again", async () => {
    const { stream, anchors } = files("lambda-fail");
    const a = await instance(stream, anchors);
    const tenantId = scope();
    await a.h.runtime.auditLog.record(entry(tenantId, 0));
    const event = streamEventOf(await items("NEW#", tenantId));
    const broken = await instance(stream, anchors);
    injectFault(broken.table, (call) => call.commandName === "PutItemCommand");
    expect(await sequenceBatch(broken.h.runtime, event)).toEqual({
      batchItemFailures: [{ itemIdentifier: event.Records[0]?.dynamodb?.SequenceNumber }],
    });
    expect(await chainedRequestIds(tenantId)).toEqual([]);
  });
});

describe("verify over the API", () => {
  it("resumes with a cursor when a call's budget runs out, and a forged cursor is refused", async () => {
    const { stream, anchors } = files("cursor");
    const a = await instance(stream, anchors);
    const tenantId = scope();
    for (let n = 0; n < 30; n += 1) await a.h.runtime.auditLog.record(entry(tenantId, n));
    await new StreamSequencer(stream, a.h.runtime.sequencer, a.h.runtime.logger, 5).drain();
    const verifier = a.h.runtime.chainVerifier;
    let cursor: string | undefined;
    const through: number[] = [];
    for (let call = 0; call < 100; call += 1) {
      const result = await verifier.verify(tenantId, undefined, {
        budgetMs: 0,
        ...(cursor === undefined ? {} : { cursor }),
      });
      expect(result.intact).toBe(true);
      through.push(result.verifiedThrough);
      cursor = result.nextCursor;
      if (cursor === undefined) break;
    }
    expect(through.at(-1)).toBe(30);
    expect(through.length).toBeGreaterThan(10);
    const forged = Buffer.from(
      JSON.stringify([
        JSON.stringify([29, "0".repeat(64), "2026-01-01", "local:x:2026-01-01"]),
        "0".repeat(64),
      ]),
    ).toString("base64url");
    await expect(verifier.verify(tenantId, undefined, { cursor: forged })).rejects.toMatchObject({
      code: "invalid_request",
    });
  });
});
