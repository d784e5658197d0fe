import { QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_BLOCK_BYTES } from "../../shared/domain/audit-block.ts";
import { AUDIT_FIELD_LIMITS } from "../../shared/domain/audit-chain.ts";
import { AuditRecordTooLargeError } from "../../shared/domain/errors.ts";
import type { AuditEvent } from "../../shared/domain/types.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";

let h: Harness;
let counter = 0;

const event = (scope: string, n: number, fields: Partial<AuditEvent> = {}): AuditEvent => ({
  tenantId: scope,
  action: "token.create",
  outcome: "success",
  actor: "block-size",
  role: "admin",
  requestId: `size-${n}`,
  time: new Date().toISOString(),
  ...fields,
});

const freshScope = () => {
  counter += 1;
  return `size-${counter}`;
};

/** Every block of a scope as stored, with its serialized size. */
async function blocks(scope: string): Promise<{ records: number; bytes: number }[]> {
  const result = await h.table.doc.send(
    new QueryCommand({
      TableName: h.table.name,
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": `AUDIT#${scope}` },
    }),
  );
  return (result.Items ?? []).map((item) => ({
    records: (item.records as unknown[]).length,
    bytes: Buffer.byteLength(JSON.stringify(item)),
  }));
}

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

describe("audit blocks stay within DynamoDB's item size", () => {
  it("100 concurrent token.create records with 6.4 KB details are all stored, and the chain verifies", async () => {
    const scope = freshScope();
    const detail = "x".repeat(6400);
    const appended = await Promise.all(
      Array.from({ length: 100 }, (_, n) => h.runtime.chainWriter.append(event(scope, n, { detail }))),
    );
    expect(appended.map((record) => record.sequence)).toEqual(Array.from({ length: 100 }, (_, n) => n + 1));
    expect(await h.runtime.chainVerifier.verify(scope)).toMatchObject({ intact: true, verifiedThrough: 100 });
  });

  it("records that fit the field limits but not one block together are cut into blocks under the size limit", async () => {
    const scope = freshScope();
    // Three bytes a character in UTF-8: each record carries about 10 KB of capped text.
    const fields = {
      detail: "€".repeat(AUDIT_FIELD_LIMITS.detail),
      reason: "€".repeat(AUDIT_FIELD_LIMITS.reason),
    };
    await Promise.all(
      Array.from({ length: 100 }, (_, n) => h.runtime.chainWriter.append(event(scope, n, fields))),
    );
    const stored = await blocks(scope);
    expect(stored.reduce((sum, block) => sum + block.records, 0)).toBe(100);
    expect(stored.length).toBeGreaterThan(2);
    for (const block of stored) expect(block.bytes).toBeLessThanOrEqual(MAX_BLOCK_BYTES);
    expect(await h.runtime.chainVerifier.verify(scope)).toMatchObject({ intact: true, verifiedThrough: 100 });
  });

  it("detail, actor and reason longer than their limits are cut at construction, saying how much was cut", async () => {
    const scope = freshScope();
    const record = await h.runtime.chainWriter.append(
      event(scope, 1, { detail: "d".repeat(10_000), actor: "a".repeat(5000), reason: "r".repeat(3000) }),
    );
    expect(record.detail?.length).toBeLessThanOrEqual(AUDIT_FIELD_LIMITS.detail);
    expect(record.actor.length).toBeLessThanOrEqual(AUDIT_FIELD_LIMITS.actor);
    expect(record.reason?.length).toBeLessThanOrEqual(AUDIT_FIELD_LIMITS.reason);
    expect(record.detail).toMatch(/ \[\d+ characters cut\]$/);
    expect(record.detail?.startsWith("d".repeat(AUDIT_FIELD_LIMITS.detail - 30))).toBe(true);
    expect(await h.runtime.chainVerifier.verify(scope)).toMatchObject({ intact: true, verifiedThrough: 1 });
  });

  it("a record too large for any block alone is refused as too large, not as the store unavailable, and the chain goes on", async () => {
    const scope = freshScope();
    const huge = event(scope, 1, { secretName: "s".repeat(MAX_BLOCK_BYTES) });
    const [refused, next] = await Promise.allSettled([
      h.runtime.chainWriter.append(huge),
      h.runtime.chainWriter.append(event(scope, 2)),
    ]);
    expect(refused).toMatchObject({ status: "rejected", reason: expect.any(AuditRecordTooLargeError) });
    expect((refused as PromiseRejectedResult).reason.message).toMatch(/exceeds the \d+-byte block limit/);
    expect(next).toMatchObject({ status: "fulfilled", value: { sequence: 1 } });
    await expect(
      h.runtime.auditLog.record({
        tenantId: scope,
        action: "secret.read",
        outcome: "success",
        actor: "x",
        role: "admin",
        requestId: "r",
        secretName: "s".repeat(MAX_BLOCK_BYTES),
      }),
    ).rejects.toMatchObject({ status: 413, code: "audit_record_too_large" });
  });
});
