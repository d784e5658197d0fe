import { MAX_BLOCK_RECORDS } from "../domain/audit-block.ts";
import {
  type AuditFilter,
  type ChainedAuditRecord,
  type ChainHead,
  isChainedRecordShape,
  type PendingAuditRecord,
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
  PENDING_PREFIX,
  pendingSortKey,
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

/** A stored block as a sequencer reads it back: where it starts, its records, and its high-water time. */
export interface StoredBlock {
  readonly first: number;
  readonly records: readonly StoredRecord[];
  /** The latest record time in this block and every one before it; absent when the block has none. */
  readonly hw?: string;
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

  /**
   * False when a block already starts at this sequence number: another writer appended first. `hw` is
   * the latest record time in the chain through this block, so a sequencer looking for records it may
   * already hold reads back only as far as blocks that could hold them.
   */
  appendBlock(scope: string, records: readonly ChainedAuditRecord[], hw?: string): Promise<boolean> {
    const first = records[0];
    if (first === undefined) throw new RangeError("an audit block needs at least one record");
    return this.#table.putIfAbsent({
      pk: auditPartition(scope),
      sk: blockSortKey(first.sequence),
      records,
      ...(hw === undefined ? {} : { hw }),
      // When the block was chained: how far sequencing lags behind the request path shows here.
      sealedAt: new Date().toISOString(),
    });
  }

  /**
   * The request path's one write: a record under its own unique key, so no other writer can contend
   * for it (records of concurrent requests in one process share a call). False only if that id was
   * already written, which a fresh id never is.
   */
  putPending(record: PendingAuditRecord): Promise<boolean> {
    return this.#table.putFresh({
      pk: auditPartition(record.tenantId),
      sk: pendingSortKey(record.time, record.id),
      record,
    });
  }

  /** Up to `limit` records waiting in a scope, oldest first, as stored (unchecked). */
  async pending(scope: string, limit: number): Promise<unknown[]> {
    const result = await this.#table.query({
      keyCondition: "pk = :pk AND begins_with(sk, :prefix)",
      values: { ":pk": auditPartition(scope), ":prefix": PENDING_PREFIX },
      consistent: true,
      limit,
    });
    return result.items.map((item) => item.record);
  }

  /** Every record waiting in a scope, oldest first, as stored (unchecked), a page at a time. */
  async *allPending(scope: string): AsyncGenerator<unknown> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const result = await this.#table.query({
        keyCondition: "pk = :pk AND begins_with(sk, :prefix)",
        values: { ":pk": auditPartition(scope), ":prefix": PENDING_PREFIX },
        consistent: true,
        limit: 1000,
        startKey,
      });
      for (const item of result.items) yield item.record;
      startKey = result.lastKey;
    } while (startKey !== undefined);
  }

  /** When the scope's oldest waiting record was written, by its key (what a forger cannot back-date unseen). */
  async oldestPending(scope: string): Promise<string | undefined> {
    const result = await this.#table.query({
      keyCondition: "pk = :pk AND begins_with(sk, :prefix)",
      values: { ":pk": auditPartition(scope), ":prefix": PENDING_PREFIX },
      consistent: true,
      limit: 1,
      projection: "sk",
    });
    const sk = result.items[0]?.sk;
    return typeof sk === "string" ? sk.slice(PENDING_PREFIX.length, sk.lastIndexOf("#")) : undefined;
  }

  /** Drops records a sequencer has chained (or found already chained), of any scopes. */
  deletePending(
    records: readonly { readonly tenantId: string; readonly time: string; readonly id: string }[],
  ): Promise<void> {
    return this.#table.deleteMany(
      records.map((record) => ({
        pk: auditPartition(record.tenantId),
        sk: pendingSortKey(record.time, record.id),
      })),
    );
  }

  /** A scope's blocks, newest first, read consistently: the head, and the records a sequencer may already hold. */
  async *recentBlocks(scope: string, pageSize = 4): AsyncGenerator<StoredBlock> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const result = await this.#table.query({
        keyCondition: "pk = :pk AND begins_with(sk, :prefix)",
        values: { ":pk": auditPartition(scope), ":prefix": BLOCK_PREFIX },
        forward: false,
        limit: pageSize,
        consistent: true,
        startKey,
      });
      for (const item of result.items) {
        yield {
          first: firstSequenceOfBlock(String(item.sk)),
          records: recordsOf(item),
          ...(typeof item.hw === "string" ? { hw: item.hw } : {}),
        };
      }
      startKey = result.lastKey;
    } while (startKey !== undefined);
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

  /**
   * Every record of a scope, oldest first, block by block, for verification; from `from` on when a
   * verification resumes (the block holding it starts at most a block's length before it).
   */
  async *walk(scope: string, from = 1): AsyncGenerator<StoredRecord> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const result = await this.#table.query({
        keyCondition: "pk = :pk AND sk BETWEEN :low AND :high",
        values: {
          ":pk": auditPartition(scope),
          // From the start, anything under the prefix counts, a block misplaced before record 1 too.
          ":low": from <= MAX_BLOCK_RECORDS ? BLOCK_PREFIX : blockSortKey(from - MAX_BLOCK_RECORDS + 1),
          ":high": BLOCK_RANGE_END,
        },
        consistent: true,
        limit: BLOCKS_PER_PAGE,
        startKey,
      });
      for (const item of result.items) {
        for (const stored of recordsOf(item)) if (from === 1 || stored.position >= from) yield stored;
      }
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
