import { randomUUID } from "node:crypto";
import type { ScheduledEvent } from "aws-lambda";

/** What an EventBridge schedule rule delivers to its Lambda target. */
export function scheduledEvent(ruleArn: string): ScheduledEvent {
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": "Scheduled Event",
    source: "aws.events",
    account: "111122223333",
    time: "2026-11-24T03:00:00Z",
    region: "us-east-1",
    resources: [ruleArn],
    detail: {},
  };
}
