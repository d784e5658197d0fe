import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import { PENDING_PREFIX } from "./keys.ts";

/** A DynamoDB Streams record as Lambda delivers it, narrowed to what the sequencer reads. */
export interface StreamRecord {
  readonly eventName?: string;
  readonly dynamodb?: {
    readonly SequenceNumber?: string;
    readonly Keys?: Record<string, unknown>;
    readonly NewImage?: Record<string, unknown>;
  };
}

/**
 * The waiting audit records a stream batch carries, as stored when they were inserted: the stream
 * keeps an insert's image even if the item was deleted since, so a record a table writer removed
 * before it was chained still reaches the sequencer. Anything else the stream carries (other items,
 * removals) is skipped; the event source mapping's filter already keeps most of it away.
 */
export function pendingImages(records: readonly StreamRecord[]): unknown[] {
  const images: unknown[] = [];
  for (const record of records) {
    const image = record.dynamodb?.NewImage;
    if (record.eventName !== "INSERT" || image === undefined) continue;
    const item = unmarshall(image as Record<string, AttributeValue>);
    if (typeof item.pk === "string" && typeof item.sk === "string" && item.sk.startsWith(PENDING_PREFIX)) {
      images.push(item.record);
    }
  }
  return images;
}
