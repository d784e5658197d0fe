import { ScanCommand } from "@aws-sdk/lib-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import type { DynamoDBStreamEvent } from "aws-lambda";
import type { Table } from "../shared/storage/table.ts";

/**
 * dynalite has no streams, so this builds the batch the table's stream would deliver to the audit
 * sequencer: an INSERT with its NEW_IMAGE for each item given, in the shape Lambda passes it on.
 */
export function streamEventOf(items: readonly Record<string, unknown>[]): DynamoDBStreamEvent {
  return {
    Records: items.map((item, n) => ({
      eventID: `event-${n}`,
      eventName: "INSERT",
      eventSource: "aws:dynamodb",
      eventVersion: "1.1",
      awsRegion: "us-east-1",
      dynamodb: {
        SequenceNumber: String(1000 + n).padStart(21, "0"),
        Keys: marshall({ pk: item.pk, sk: item.sk }) as never,
        NewImage: marshall(item, { removeUndefinedValues: true }) as never,
        StreamViewType: "NEW_IMAGE",
      },
    })),
  };
}

/** Every waiting audit record in the table, read behind the service's back, as the stream saw them inserted. */
export async function waitingAuditItems(table: Table): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await table.doc.send(
      new ScanCommand({
        TableName: table.name,
        FilterExpression: "begins_with(pk, :audit) AND begins_with(sk, :new)",
        ExpressionAttributeValues: { ":audit": "AUDIT#", ":new": "NEW#" },
        ExclusiveStartKey: startKey,
      }),
    );
    items.push(...(page.Items ?? []));
    startKey = page.LastEvaluatedKey;
  } while (startKey !== undefined);
  return items;
}
