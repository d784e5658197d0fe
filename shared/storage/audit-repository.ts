import { QueryCommand, ScanCommand } from "@aws-sdk/lib-dynamodb";
import type { AuditFilter, ChainedAuditRecord, ChainHead } from "../domain/audit-chain.ts";
import type { Page } from "../domain/types.ts";
import { putIfAbsent, queryMatching, send, type Table } from "./table.ts";

const partition = (scope: string) => `AUDIT#${scope}`;
const RECORD_PREFIX = "SEQ#";
/** Zero-padded so that sort-key order is sequence order. */
const recordKey = (scope: string, sequence: number) => ({
  pk: partition(scope),
  sk: `${RECORD_PREFIX}${String(sequence).padStart(12, "0")}`,
});
const WALK_PAGE = 500;

/** A stored record and the sequence number its key puts it at, which a tampered record may contradict. */
export interface StoredRecord {
  readonly position: number;
  readonly record: ChainedAuditRecord;
}

function toStored(item: Record<string, unknown>): StoredRecord {
  const { pk: _pk, sk, ...record } = item;
  return {
    position: Number(String(sk).slice(RECORD_PREFIX.length)),
    record: record as unknown as ChainedAuditRecord,
  };
}

/**
 * Each scope's audit chain, one item per record keyed by its sequence number. An append is one
 * conditional put on the next sequence number's key: two writers racing for the same number cannot
 * both succeed, so the chain neither forks nor loses a record, without transactions or a head item.
 */
export class AuditRepository {
  constructor(private readonly table: Table) {}

  /** False when a record already holds this sequence number: another writer appended first. */
  appendIfNext(scope: string, record: ChainedAuditRecord): Promise<boolean> {
    return putIfAbsent(this.table, { ...recordKey(scope, record.sequence), ...record });
  }

  /** The newest record's place and hash, read consistently: where an appender that lost a race picks up. */
  async lastHead(scope: string): Promise<ChainHead | undefined> {
    const result = await send("Query", () =>
      this.table.doc.send(
        new QueryCommand({
          TableName: this.table.name,
          KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
          ExpressionAttributeValues: { ":pk": partition(scope), ":prefix": RECORD_PREFIX },
          ScanIndexForward: false,
          Limit: 1,
          ConsistentRead: true,
        }),
      ),
    );
    const item = result.Items?.[0];
    if (item === undefined) return undefined;
    const { position, record } = toStored(item);
    return { sequence: position, hash: String(record.hash) };
  }

  /**
   * One page of a scope's records, newest first (or oldest first, for export), narrowed by the filter.
   * Records are keyed by sequence, so the filter, time range included, is applied as the query reads.
   */
  async query(
    scope: string,
    filter: AuditFilter,
    page: { limit: number; cursor?: string | undefined; oldestFirst?: boolean },
  ): Promise<Page<ChainedAuditRecord>> {
    const pk = partition(scope);
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = { ":pk": pk, ":prefix": RECORD_PREFIX };
    const conditions: string[] = [];
    const equal = (attribute: string, value: string | undefined) => {
      if (value === undefined) return;
      names[`#${attribute}`] = attribute;
      values[`:${attribute}`] = value;
      conditions.push(`#${attribute} = :${attribute}`);
    };
    equal("secretName", filter.secretName);
    equal("actor", filter.actor);
    equal("action", filter.action);
    equal("outcome", filter.outcome);
    if (filter.from !== undefined || filter.to !== undefined) names["#time"] = "time";
    if (filter.from !== undefined) {
      values[":from"] = filter.from;
      conditions.push("#time >= :from");
    }
    if (filter.to !== undefined) {
      values[":to"] = filter.to;
      conditions.push("#time <= :to");
    }
    const result = await queryMatching(
      this.table,
      {
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues: values,
        ScanIndexForward: page.oldestFirst === true,
        ...(conditions.length === 0
          ? {}
          : { FilterExpression: conditions.join(" AND "), ExpressionAttributeNames: names }),
      },
      { partition: pk, sortKeyPrefix: RECORD_PREFIX, limit: page.limit, cursor: page.cursor },
    );
    return { ...result, items: result.items.map((item) => toStored(item).record) };
  }

  /** Every record of a scope, oldest first, page by page, for verification and export. */
  async *walk(scope: string): AsyncGenerator<StoredRecord> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const result = await send("Query", () =>
        this.table.doc.send(
          new QueryCommand({
            TableName: this.table.name,
            KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues: { ":pk": partition(scope), ":prefix": RECORD_PREFIX },
            ConsistentRead: true,
            Limit: WALK_PAGE,
            ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
          }),
        ),
      );
      for (const item of result.Items ?? []) yield toStored(item);
      startKey = result.LastEvaluatedKey;
    } while (startKey !== undefined);
  }

  /** Every scope that has an audit chain: a full scan, for the operator's verify-all command only. */
  async scopes(): Promise<string[]> {
    const found = new Set<string>();
    let startKey: Record<string, unknown> | undefined;
    do {
      const result = await send("Scan", () =>
        this.table.doc.send(
          new ScanCommand({
            TableName: this.table.name,
            FilterExpression: "begins_with(pk, :audit)",
            ProjectionExpression: "pk",
            ExpressionAttributeValues: { ":audit": "AUDIT#" },
            ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
          }),
        ),
      );
      for (const item of result.Items ?? []) found.add(String(item.pk).slice("AUDIT#".length));
      startKey = result.LastEvaluatedKey;
    } while (startKey !== undefined);
    return [...found].sort();
  }
}
