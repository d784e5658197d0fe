import type { AuditEvent, Page } from "../domain/types.ts";
import { putIfAbsent, queryPage, type Table } from "./table.ts";

const partition = (scope: string) => `AUDIT#${scope}`;

/** Append-only audit events per tenant, sorted by time so the newest come first. */
export class AuditRepository {
  constructor(private readonly table: Table) {}

  /** `eventId` makes the sort key unique when two events share a millisecond. */
  async append(event: AuditEvent, eventId: string): Promise<void> {
    await putIfAbsent(this.table, {
      pk: partition(event.tenantId),
      sk: `${event.time}#${eventId}`,
      ...event,
    });
  }

  async listNewestFirst(scope: string, limit: number, cursor?: string): Promise<Page<AuditEvent>> {
    const pk = partition(scope);
    const page = await queryPage(
      this.table,
      {
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": pk },
        ScanIndexForward: false,
      },
      { partition: pk, sortKeyPrefix: "", limit, cursor },
    );
    return {
      ...page,
      items: page.items.map(({ pk: _pk, sk: _sk, ...event }) => event as unknown as AuditEvent),
    };
  }
}
