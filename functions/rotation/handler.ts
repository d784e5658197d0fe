import type { Context, ScheduledEvent } from "aws-lambda";
import type { RunSummary } from "../../shared/domain/rotation.ts";
import { createLambdaRuntime } from "../../shared/runtime/lambda.ts";

const runtime = await createLambdaRuntime(process.env);

/** Stop this long before Lambda's own timeout, so the last checkpoint and the events still get out. */
const SAFETY_MARGIN_MS = 10_000;

/**
 * Invoked by an EventBridge schedule: works through unfinished DEK sweeps, an unfinished KEK re-wrap
 * and due secret rotations until the invocation's time is nearly spent, and returns what it did.
 */
export async function handler(
  event: ScheduledEvent,
  context: Context,
): Promise<RunSummary | { skipped: string }> {
  if (event?.source !== "aws.events" || event["detail-type"] !== "Scheduled Event") {
    runtime.logger.warn("rotation handler ignored an event that is not an EventBridge schedule", {
      source: typeof event?.source === "string" ? event.source.slice(0, 64) : typeof event?.source,
    });
    return { skipped: "not an EventBridge scheduled event" };
  }
  const deadline = { expired: () => context.getRemainingTimeInMillis() <= SAFETY_MARGIN_MS };
  // The request id, not the event id: EventBridge may deliver one event twice, and two invocations
  // sharing a lease owner would both think they hold the same sweep.
  return runtime.scheduledWork.run(deadline, context.awsRequestId);
}
