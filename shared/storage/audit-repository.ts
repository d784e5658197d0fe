import { MAX_BLOCK_RECORDS } from "../domain/audit-block.ts";
import {
  type AuditFilter,
  type ChainedAuditRecord,
  type ChainHead,
  isChainedRecordShape,
} from "../domain/audit-chain.ts";
import { ValidationError } from "../domain/errors.ts";
import type { Page } from "../domain/types.ts";
import {
  AUDIT_PREFIX,
  auditPartition,
  BLOCK_PREFIX,
  BLOCK_RANGE_END,
  BLOCK_SORT_KEY,
  blockSortKey,
  firstSequenceOfBlock,
  scopeOfAuditPartition,
} from "./keys.ts";
import type { Table } from "./table.ts";

/** Blocks read per query page; a block holds at most MAX_BLOCK_RECORDS records. */
const BLOCKS_PER_PAGE = 100;
const MAX_READS_PER_PAGE = 8;

/** A stored record and the sequence number its place puts it at, which a tampered record may contradict. */
export interface StoredRecord {
  readonly position: number;
  /** As stored, unchecked: the table may hold anything here, so readers check its shape first. */
  readonly record: ChainedAuditRecord;
}

/** A block's records with their places: the block's key names the first, the rest follow in order. */
function recordsOf(item: Record<string, unknown>): StoredRecord[] {
  const first = firstSequenceOfBlock(String(item.sk));
  const records = Array.isArray(item.records) ? (item.records as ChainedAuditRecord[]) : [];
  return records.map((record, index) => ({ position: first + index, record }));
}

function matches(record: ChainedAuditRecord, filter: AuditFilter): boolean {
  return (
    (filter.secretName === undefined || record.secretName === filter.secretName) &&
    (filter.actor === undefined || record.actor === filter.actor) &&
    (filter.action === undefined || record.action === filter.action) &&
    (filter.outcome === undefined || record.outcome === filter.outcome) &&
    (filter.from === undefined || record.time >= filter.from) &&
    (filter.to === undefined || record.time <= filter.to)
  );
}

/** Where a listing stopped: a block and the last record of it that was returned. */
interface Cursor {
  readonly sk: string;
  readonly i: number;
}

const encodeCursor = (cursor: Cursor) => Buffer.from(JSON.stringify(cursor)).toString("base64url");

/** Cursors are client input: anything but a block key and an index in range is refused with a 400. */
function decodeCursor(raw: string | undefined): Cursor | undefined {
  if (raw === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(raw, "base64url").toString("utf8"));
    if (
      typeof parsed === "object" &&
      parsed !== null &&
      Object.keys(parsed).length === 2 &&
      "sk" in parsed &&
      "i" in parsed &&
      typeof parsed.sk === "string" &&
      BLOCK_SORT_KEY.test(parsed.sk) &&
      Number.isInteger(parsed.i) &&
      (parsed.i as number) >= 0 &&
      (parsed.i as number) < MAX_BLOCK_RECORDS
    ) {
      return { sk: parsed.sk, i: parsed.i as number };
    }
  } catch {
    // Falls through to the same answer as any other foreign cursor.
  }
  throw new ValidationError("cursor is not valid for this listing");
}

/**
 * Each scope's audit chain, stored as blocks of consecutive records, keyed by the sequence number of
 * the block's first record. An append is one conditional put of the next block: two writers racing
 * for the same next sequence number cannot both succeed, so the chain neither forks nor loses a
 * record, without transactions or a head item. A block holds one record unless several were waiting
 * for the same write (group commit), and each record in it carries its own hash and MAC.
 */
export class AuditRepository {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  /** False when a block already starts at this sequence number: another writer appended first. */
  appendBlock(scope: string, records: readonly ChainedAuditRecord[]): Promise<boolean> {
    const first = records[0];
    if (first === undefined) throw new RangeError("an audit block needs at least one record");
    return this.#table.putIfAbsent({ pk: auditPartition(scope), sk: blockSortKey(first.sequence), records });
  }

  /** The newest record's place and hash, read consistently: where an appender that lost a race picks up. */
  async lastHead(scope: string): Promise<(ChainHead & { time?: string }) | undefined> {
    const result = await this.#table.query({
      keyCondition: "pk = :pk AND begins_with(sk, :prefix)",
      values: { ":pk": auditPartition(scope), ":prefix": BLOCK_PREFIX },
      forward: false,
      limit: 1,
      consistent: true,
    });
    const item = result.items[0];
    const last = item === undefined ? undefined : recordsOf(item).at(-1);
    if (last === undefined) return undefined;
    // A malformed newest record still fixes where the chain goes on; verification reports it.
    const { hash, time } = isChainedRecordShape(last.record) ? last.record : { hash: "", time: undefined };
    return { sequence: last.position, hash, ...(time === undefined ? {} : { time }) };
  }

  /**
   * One page of a scope's records, newest first, narrowed by the filter as blocks are read. A page may hold fewer than `limit` records while a cursor continues it.
   */
  async query(
    scope: string,
    filter: AuditFilter,
    page: { limit: number; cursor?: string | undefined },
  ): Promise<Page<ChainedAuditRecord>> {
    const cursor = decodeCursor(page.cursor);
    const values: Record<string, unknown> = { ":pk": auditPartition(scope) };
    let range: string;
    if (cursor === undefined) {
      values[":prefix"] = BLOCK_PREFIX;
      range = "begins_with(sk, :prefix)";
    } else {
      // The cursor's own block is read again, and its records up to the cursor skipped.
      values[":low"] = BLOCK_PREFIX;
      values[":high"] = cursor.sk;
      range = "sk BETWEEN :low AND :high";
    }
    const items: ChainedAuditRecord[] = [];
    let startKey: Record<string, unknown> | undefined;
    let lastBlock: Cursor | undefined;
    for (let read = 0; read < MAX_READS_PER_PAGE; read += 1) {
      const result = await this.#table.query({
        keyCondition: `pk = :pk AND ${range}`,
        values,
        forward: false,
        limit: BLOCKS_PER_PAGE,
        startKey,
      });
      for (const item of result.items) {
        const sk = String(item.sk);
        const stored = recordsOf(item);
        for (let i = stored.length - 1; i >= 0; i -= 1) {
          const skip = sk === cursor?.sk && i >= cursor.i;
          const record = stored[i]?.record;
          // Malformed records are left for verification to report; a listing shows the well-formed.
          if (skip || !isChainedRecordShape(record) || !matches(record, filter)) continue;
          items.push(record);
          if (items.length === page.limit) return { items, nextCursor: encodeCursor({ sk, i }) };
        }
        lastBlock = { sk, i: 0 };
      }
      startKey = result.lastKey;
      if (startKey === undefined) return { items };
    }
    return lastBlock === undefined ? { items } : { items, nextCursor: encodeCursor(lastBlock) };
  }

  /**
   * Matching records of a scope, oldest first, from just after `cursor`, each with the cursor that
   * goes on after it: an export page stops at any record, not only at a page of `limit`.
   */
  async *exportFrom(
    scope: string,
    filter: AuditFilter,
    cursor?: string,
  ): AsyncGenerator<{ readonly record: ChainedAuditRecord; readonly cursor: string }> {
    const after = decodeCursor(cursor);
    let startKey: Record<string, unknown> | undefined;
    do {
      const result = await this.#table.query({
        keyCondition: "pk = :pk AND sk BETWEEN :low AND :high",
        values: { ":pk": auditPartition(scope), ":low": after?.sk ?? BLOCK_PREFIX, ":high": BLOCK_RANGE_END },
        limit: BLOCKS_PER_PAGE,
        startKey,
      });
      for (const item of result.items) {
        const sk = String(item.sk);
        for (const [i, { record }] of recordsOf(item).entries()) {
          if (sk === after?.sk && i <= after.i) continue;
          // Malformed records are left for verification to report, as in a listing.
          if (!isChainedRecordShape(record) || !matches(record, filter)) continue;
          yield { record, cursor: encodeCursor({ sk, i }) };
        }
      }
      startKey = result.lastKey;
    } while (startKey !== undefined);
  }

  /** Every record of a scope, oldest first, block by block, for verification. */
  async *walk(scope: string): AsyncGenerator<StoredRecord> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const result = await this.#table.query({
        keyCondition: "pk = :pk AND begins_with(sk, :prefix)",
        values: { ":pk": auditPartition(scope), ":prefix": BLOCK_PREFIX },
        consistent: true,
        limit: BLOCKS_PER_PAGE,
        startKey,
      });
      for (const item of result.items) yield* recordsOf(item);
      startKey = result.lastKey;
    } while (startKey !== undefined);
  }

  /** Every scope that has an audit chain: a full scan, for the operator's verify-all command only. */
  async scopes(): Promise<string[]> {
    const found = new Set<string>();
    let startKey: Record<string, unknown> | undefined;
    do {
      const result = await this.#table.scan({
        filter: "begins_with(pk, :audit)",
        projection: "pk",
        values: { ":audit": AUDIT_PREFIX },
        startKey,
      });
      for (const item of result.items) found.add(scopeOfAuditPartition(String(item.pk)));
      startKey = result.lastKey;
    } while (startKey !== undefined);
    return [...found].sort();
  }
}
