import type { Context, EventBridgeEvent } from "aws-lambda";
import { REWRAP_REQUEST, type RewrapSummary, type RunSummary } from "../../shared/domain/rotation.ts";
import { createLambdaRuntime } from "../../shared/runtime/lambda.ts";

// The only function that may Scan (the one-off directory backfill) and ReEncrypt (the KEK re-wrap).
const runtime = await createLambdaRuntime(process.env, { directoryBackfill: true });
const stage = runtime.config.stage;

/** Stop this long before Lambda's own timeout, so the last checkpoint and the events still get out. */
const SAFETY_MARGIN_MS = 10_000;

type Invocation = Partial<EventBridgeEvent<string, unknown>> | null | undefined;

const isSchedule = (event: Invocation) =>
  event?.source === "aws.events" && event["detail-type"] === "Scheduled Event";

/** A re-wrap request from this stage's API; the bus rule matches on the same three fields. */
const isRewrapRequest = (event: Invocation) =>
  event?.source === REWRAP_REQUEST.source &&
  event["detail-type"] === REWRAP_REQUEST.detailType &&
  stage !== undefined &&
  typeof event.detail === "object" &&
  event.detail !== null &&
  (event.detail as { stage?: unknown }).stage === stage;

/**
 * Invoked by an EventBridge schedule, it works through unfinished DEK sweeps, an unfinished KEK re-wrap
 * and due secret rotations until the invocation's time is nearly spent. Invoked with a "KEK Rewrap
 * Requested" event from its own stage's API, it works on the re-wrap alone. Either way it returns what
 * it did; anything else is skipped.
 */
export async function handler(
  event: Invocation,
  context: Context,
): Promise<RunSummary | RewrapSummary | { skipped: string }> {
  const deadline = { expired: () => context.getRemainingTimeInMillis() <= SAFETY_MARGIN_MS };
  // The request id, not the event id: EventBridge may deliver one event twice, and two invocations
  // sharing a lease owner would both think they hold the same sweep.
  if (isSchedule(event)) return runtime.scheduledWork.run(deadline, context.awsRequestId);
  if (isRewrapRequest(event)) return runtime.scheduledWork.runRequestedRewrap(deadline, context.awsRequestId);
  runtime.logger.warn(
    "rotation handler ignored an event that is neither its schedule nor its stage's re-wrap request",
    {
      source: typeof event?.source === "string" ? event.source.slice(0, 64) : typeof event?.source,
    },
  );
  return { skipped: "not an EventBridge scheduled event" };
}
