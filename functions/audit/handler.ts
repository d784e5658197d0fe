import type {
  Context,
  DynamoDBBatchResponse,
  DynamoDBStreamEvent,
  SQSBatchResponse,
  SQSEvent,
} from "aws-lambda";
import { readRuntimeConfig, requireKmsIngestionConfig } from "../../shared/runtime/config.ts";
import { createLambdaRuntime } from "../../shared/runtime/lambda.ts";
import { ingestBatch } from "./ingest.ts";
import { isStreamEvent, sequenceBatch } from "./sequence.ts";

// Needs TABLE_NAME, WATCHED_KMS_KEY_ARNS, SERVICE_ROLE_ARNS, AUDIT_MAC_KEY_ID, and the KEK settings
// every runtime is built from (KMS_KEY_ID); ingestion itself never uses the KEK.
requireKmsIngestionConfig(readRuntimeConfig(process.env));
// No start-up check: ingestion never uses the KEK, and must go on recording KMS events during a KEK
// incident, when they matter most (docs/operations.md).
// It anchors each chain's head in the anchor bucket (AUDIT_ANCHOR_BUCKET) after every stream batch.
const runtime = await createLambdaRuntime(process.env, { startUpCheck: false, anchors: "append" });

/**
 * Two event sources: CloudTrail's KMS events from SQS, and the table's stream, whose waiting audit
 * records this function chains (it is the audit sequencer in AWS).
 */
export async function handler(
  event: SQSEvent | DynamoDBStreamEvent,
  _context: Context,
): Promise<SQSBatchResponse | DynamoDBBatchResponse> {
  if (isStreamEvent(event)) return sequenceBatch(runtime, event);
  const { batchItemFailures } = await ingestBatch(runtime, event as SQSEvent);
  return { batchItemFailures };
}
