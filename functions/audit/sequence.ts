import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from "aws-lambda";
import type { Runtime } from "../../shared/runtime/container.ts";
import { pendingImages, type StreamRecord } from "../../shared/storage/stream-images.ts";

/**
 * One batch from the table's stream into the chains. A batch that cannot be chained whole is handed
 * back from its first record, for Lambda to deliver again; what was chained comes back as duplicates.
 */
export async function sequenceBatch(
  runtime: Runtime,
  event: DynamoDBStreamEvent,
): Promise<DynamoDBBatchResponse> {
  const records = event.Records as StreamRecord[];
  try {
    const { sequenced, duplicates, rejected } = await runtime.sequencer.integrate(pendingImages(records));
    runtime.logger.info("audit stream batch sequenced", { sequenced, duplicates, rejected });
    return { batchItemFailures: [] };
  } catch {
    const first = records[0]?.dynamodb?.SequenceNumber;
    return { batchItemFailures: first === undefined ? [] : [{ itemIdentifier: first }] };
  }
}

export const isStreamEvent = (event: unknown): event is DynamoDBStreamEvent =>
  (event as { Records?: { eventSource?: string }[] }).Records?.[0]?.eventSource === "aws:dynamodb";
