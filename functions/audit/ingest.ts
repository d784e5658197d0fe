import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { kmsApiCallEventSchema } from "../../shared/domain/cloudtrail.ts";
import type { Logger } from "../../shared/observability/logger.ts";
import type { Runtime } from "../../shared/runtime/container.ts";

export interface BatchSummary {
  recorded: number;
  anomalies: number;
  ignored: number;
  malformed: number;
  retried: number;
}

function parse(record: SQSRecord) {
  try {
    return kmsApiCallEventSchema.safeParse(JSON.parse(record.body));
  } catch {
    return undefined;
  }
}

/**
 * One SQS batch of EventBridge events. A malformed event is counted and logged by message id only
 * (its content may be anything) and dropped: retrying cannot fix it. Anything else that fails (the
 * store or the audit chain unavailable) is reported as a batch item failure, so SQS redelivers just
 * that message and, after its retries, moves it to the dead-letter queue.
 */
export async function ingestBatch(runtime: Runtime, event: SQSEvent, logger: Logger = runtime.logger) {
  const summary: BatchSummary = { recorded: 0, anomalies: 0, ignored: 0, malformed: 0, retried: 0 };
  const batchItemFailures: SQSBatchResponse["batchItemFailures"] = [];
  // Concurrently: records of one scope that arrive together then share one audit block write.
  await Promise.all(
    event.Records.map(async (record) => {
      const parsed = parse(record);
      if (parsed === undefined || !parsed.success) {
        summary.malformed += 1;
        logger.warn("malformed CloudTrail event dropped", { messageId: record.messageId });
        return;
      }
      try {
        const result = await runtime.kmsEvents.ingest(parsed.data.detail);
        if (result.status === "ignored") summary.ignored += 1;
        else {
          summary.recorded += 1;
          summary.anomalies += result.anomalies.length;
        }
      } catch (error) {
        summary.retried += 1;
        logger.error("CloudTrail event not recorded; returned for retry", {
          messageId: record.messageId,
          errorName: error instanceof Error ? error.name : "unknown",
        });
        batchItemFailures.push({ itemIdentifier: record.messageId });
      }
    }),
  );
  logger.info("CloudTrail batch ingested", { ...summary });
  return { batchItemFailures, summary };
}
