import { StrongboxError } from "../../domain/errors.ts";
import type { RotationEvent } from "../../domain/rotation.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";

/** What a failed piece of work is reported as: its error's code, never its message. */
export const codeOf = (error: unknown) => (error instanceof StrongboxError ? error.code : "internal_error");

/**
 * One piece of scheduled work failed: counted (the RotationFailures alarm), logged, and announced, while
 * the rest of the run goes on.
 */
export function recordFailure(
  metrics: MetricsRecorder,
  logger: Logger,
  events: RotationEvent[],
  detail: Record<string, string>,
): void {
  metrics.increment("RotationFailures");
  logger.error("rotation work failed", detail);
  events.push({ detailType: "Rotation Failed", detail });
}
