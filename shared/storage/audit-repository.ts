import { PutCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import type { AuditEvent } from "../domain/types.ts";
import { decodeCursor, encodeCursor, type Page, send, type Table } from "./table.ts";

const partition = (scope: string) => `AUDIT#${scope}`;

/** Append-only audit events per tenant, sorted by time so the newest come first. */
export class AuditRepository {
  constructor(private readonly table: Table) {}

  /** `eventId` makes the sort key unique when two events share a millisecond. */
  async append(event: AuditEvent, eventId: string): Promise<void> {
    await send("PutItem", () =>
      this.table.doc.send(
        new PutCommand({
          TableName: this.table.name,
          Item: { pk: partition(event.tenantId), sk: `${event.time}#${eventId}`, ...event },
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      ),
    );
  }

  async listNewestFirst(scope: string, limit: number, cursor?: string): Promise<Page<AuditEvent>> {
    const pk = partition(scope);
    const startKey = decodeCursor(cursor, pk);
    const result = await send("Query", () =>
      this.table.doc.send(
        new QueryCommand({
          TableName: this.table.name,
          KeyConditionExpression: "pk = :pk",
          ExpressionAttributeValues: { ":pk": pk },
          ScanIndexForward: false,
          Limit: limit,
          ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
        }),
      ),
    );
    const items = (result.Items ?? []).map(({ pk: _pk, sk: _sk, ...event }) => event as AuditEvent);
    const nextCursor = encodeCursor(result.LastEvaluatedKey);
    return nextCursor === undefined ? { items } : { items, nextCursor };
  }
}
