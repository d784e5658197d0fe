import { fc, test } from "@fast-check/vitest";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { chainHash } from "../../shared/crypto/chain-keys.ts";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { canonicalRecord } from "../../shared/domain/audit-chain.ts";
import type { AuditEvent } from "../../shared/domain/types.ts";
import { auditRecordKey, deleteRawItem, getRawAuditRecord, putRawAuditRecord } from "../../testing/faults.ts";
import { type Harness, randomKek, startHarness } from "../../testing/harness.ts";

/*
 * For a random chain and a random series of edits, swaps, deletions and re-orderings done on the stored
 * blocks behind the service's back (as test/audit/chain-hardening.test.ts does them), the verifier
 * reports the first stored position that no longer holds its original record, and only that.
 */

type StoredRecord = Record<string, unknown>;

let h: Harness;
let counter = 0;

beforeAll(async () => {
  h = await startHarness({ keyring: new LocalKeyring({ active: randomKek(), previous: [] }) });
});
afterAll(async () => {
  await h.dynamo.close();
});

type EventBody = Pick<AuditEvent, "action" | "outcome" | "actor"> &
  Partial<Pick<AuditEvent, "secretName" | "version" | "detail">>;

const text = fc.string({ minLength: 1, maxLength: 24 });
const eventBody: fc.Arbitrary<EventBody> = fc.record(
  {
    action: fc.constantFrom("secret.read", "secret.write", "secret.delete", "tenant.create"),
    outcome: fc.constantFrom("success", "failure", "attempt"),
    actor: text,
    secretName: text,
    version: fc.integer({ min: 1, max: 1000 }),
    detail: text,
  },
  { requiredKeys: ["action", "outcome", "actor"] },
);

/** A value a tamperer may write into a field; never one DynamoDB would refuse. */
const fieldValue = fc.oneof(
  text,
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(text, { maxLength: 2 }),
);
const fieldName = fc.oneof(
  fc.constantFrom(
    "tenantId",
    "sequence",
    "action",
    "outcome",
    "actor",
    "role",
    "requestId",
    "time",
    "prevHash",
    "hash",
    "mac",
    "macKeyRef",
    "detail",
  ),
  fc.string({ minLength: 1, maxLength: 8 }),
);

type Op =
  | { kind: "edit"; at: number; field: string; value: unknown }
  | { kind: "rehash"; at: number; field: string; value: unknown }
  | { kind: "drop-field"; at: number; field: string }
  | { kind: "delete"; at: number }
  | { kind: "swap"; at: number; with: number }
  | { kind: "permute"; order: number[] };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("edit" as const), at: fc.nat(), field: fieldName, value: fieldValue }),
  // Edited and its hash recomputed, as someone without the audit key can.
  fc.record({ kind: fc.constant("rehash" as const), at: fc.nat(), field: fieldName, value: fieldValue }),
  fc.record({ kind: fc.constant("drop-field" as const), at: fc.nat(), field: fieldName }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("swap" as const), at: fc.nat(), with: fc.nat() }),
  fc.record({
    kind: fc.constant("permute" as const),
    order: fc.array(fc.double({ noNaN: true }), { maxLength: 12 }),
  }),
);

/** Applies one operation to the model of the stored slots (null: the block is gone). */
function apply(slots: (StoredRecord | null)[], o: Op): void {
  const n = slots.length;
  const at = "at" in o ? o.at % n : 0;
  switch (o.kind) {
    case "edit":
    case "rehash": {
      const record = slots[at];
      if (record === null || record === undefined) return;
      const edited: StoredRecord = { ...record, [o.field]: o.value };
      if (o.kind === "rehash" && o.field !== "hash" && o.field !== "mac") {
        const { hash: _hash, mac: _mac, ...body } = edited;
        edited.hash = chainHash(canonicalRecord(body as never));
      }
      slots[at] = edited;
      return;
    }
    case "drop-field": {
      const record = slots[at];
      if (record === null || record === undefined) return;
      const { [o.field]: _dropped, ...rest } = record;
      slots[at] = rest;
      return;
    }
    case "delete":
      slots[at] = null;
      return;
    case "swap": {
      const other = o.with % n;
      [slots[at], slots[other]] = [slots[other] ?? null, slots[at] ?? null];
      return;
    }
    case "permute": {
      // Sorting positions by random keys gives a random order of a random prefix of the chain.
      const prefix = Math.min(o.order.length, n);
      const moved = Array.from({ length: prefix }, (_, i) => i).sort(
        (a, b) => (o.order[a] ?? 0) - (o.order[b] ?? 0) || a - b,
      );
      const before = slots.slice(0, prefix);
      moved.forEach((from, to) => {
        slots[to] = before[from] ?? null;
      });
      return;
    }
  }
}

const same = (a: StoredRecord | null | undefined, b: StoredRecord | null | undefined) =>
  JSON.stringify(a === null || a === undefined ? a : canonicalRecord(a as never)) ===
  JSON.stringify(b === null || b === undefined ? b : canonicalRecord(b as never));

/** A new scope whose chain holds one record per body, appended one at a time (one record per block). */
async function freshChain(
  bodies: readonly EventBody[],
): Promise<{ scope: string; original: StoredRecord[] }> {
  counter += 1;
  const scope = `prop-${counter}`;
  for (const [i, body] of bodies.entries()) {
    const event: AuditEvent = {
      ...body,
      tenantId: scope,
      role: "admin",
      requestId: `req-${i}`,
      time: new Date().toISOString(),
    };
    await h.runtime.chainWriter.append(event);
  }
  const original = await Promise.all(bodies.map((_, i) => getRawAuditRecord(h.table, scope, i + 1)));
  return { scope, original };
}

describe("the audit chain under tampering", () => {
  test.prop(
    [fc.array(eventBody, { minLength: 1, maxLength: 8 }), fc.array(op, { minLength: 1, maxLength: 4 })],
    {
      numRuns: 100,
    },
  )("breaks at the first stored position that no longer holds its record", async (bodies, ops) => {
    const { scope, original } = await freshChain(bodies);
    const slots: (StoredRecord | null)[] = [...original];
    for (const o of ops) apply(slots, o);

    let firstChanged: number | undefined;
    for (const [i, slot] of slots.entries()) {
      if (same(slot, original[i])) continue;
      firstChanged ??= i + 1;
      if (slot === null) await deleteRawItem(h.table, auditRecordKey(scope, i + 1));
      else await putRawAuditRecord(h.table, scope, i + 1, slot);
    }

    const result = await h.runtime.chainVerifier.verify(scope);
    if (firstChanged === undefined) {
      expect(result).toMatchObject({ intact: true, verifiedThrough: bodies.length });
    } else {
      expect(result).toMatchObject({
        intact: false,
        verifiedThrough: firstChanged - 1,
        break: { sequence: firstChanged },
      });
    }
  });

  const single = fc.oneof(
    fc.record({ kind: fc.constant("edit" as const), field: fc.constantFrom("actor", "requestId", "action") }),
    fc.record({
      kind: fc.constant("rehash" as const),
      field: fc.constantFrom("actor", "requestId", "detail"),
    }),
    fc.constant({ kind: "delete" as const }),
    fc.constant({ kind: "swap" as const }),
  );
  test.prop([fc.array(eventBody, { minLength: 3, maxLength: 8 }), fc.nat(), single], { numRuns: 40 })(
    "names what was done: edited, re-hashed, deleted, deleted at the tail, or moved",
    async (bodies, n, change) => {
      const { scope, original } = await freshChain(bodies);
      // Swaps take a record and its successor, so `at` is never the last one for them.
      const at = (n % (change.kind === "swap" ? bodies.length - 1 : bodies.length)) + 1;
      const record = original[at - 1] as StoredRecord;
      let reason: string;
      switch (change.kind) {
        case "edit":
          await putRawAuditRecord(h.table, scope, at, {
            ...record,
            [change.field]: `${String(record[change.field])}!`,
          });
          reason = "hash_mismatch";
          break;
        case "rehash": {
          const { hash: _hash, mac, ...body } = { ...record, [change.field]: "forged" };
          await putRawAuditRecord(h.table, scope, at, {
            ...body,
            hash: chainHash(canonicalRecord(body as never)),
            mac,
          });
          reason = "mac_mismatch";
          break;
        }
        case "delete":
          await deleteRawItem(h.table, auditRecordKey(scope, at));
          reason = at === bodies.length ? "truncated" : "missing";
          break;
        case "swap":
          await putRawAuditRecord(h.table, scope, at, original[at] as StoredRecord);
          await putRawAuditRecord(h.table, scope, at + 1, record);
          reason = "misplaced";
          break;
      }
      expect(await h.runtime.chainVerifier.verify(scope)).toMatchObject({
        intact: false,
        verifiedThrough: at - 1,
        break: { sequence: at, reason },
      });
    },
  );
});
