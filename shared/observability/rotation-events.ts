import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import type { RotationEvent } from "../domain/rotation.ts";
import type { Logger } from "./logger.ts";

export const ROTATION_EVENT_SOURCE = "strongbox.rotation";

export interface RotationEvents {
  publish(events: readonly RotationEvent[]): Promise<void>;
}

/** Locally, and wherever no bus is configured: one structured log line per event. */
export class LogRotationEvents implements RotationEvents {
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  async publish(events: readonly RotationEvent[]): Promise<void> {
    for (const event of events) {
      this.#logger.info("rotation event", {
        source: ROTATION_EVENT_SOURCE,
        detailType: event.detailType,
        ...event.detail,
      });
    }
  }
}

/** PutEvents takes at most 10 entries per call. */
const MAX_ENTRIES = 10;

/** EventBridge PutEvents to the stage's bus; an entry the bus refuses makes the whole publish fail. */
export class EventBridgeRotationEvents implements RotationEvents {
  readonly #client: EventBridgeClient;
  readonly #busName: string;

  constructor(client: EventBridgeClient, busName: string) {
    this.#client = client;
    this.#busName = busName;
  }

  async publish(events: readonly RotationEvent[]): Promise<void> {
    for (let start = 0; start < events.length; start += MAX_ENTRIES) {
      const batch = events.slice(start, start + MAX_ENTRIES);
      const result = await this.#client.send(
        new PutEventsCommand({
          Entries: batch.map((event) => ({
            EventBusName: this.#busName,
            Source: ROTATION_EVENT_SOURCE,
            DetailType: event.detailType,
            Detail: JSON.stringify(event.detail),
          })),
        }),
      );
      if ((result.FailedEntryCount ?? 0) > 0) {
        throw new Error(`EventBridge refused ${result.FailedEntryCount} of ${batch.length} rotation events`);
      }
    }
  }
}

export function createRotationEvents(options: {
  readonly logger: Logger;
  readonly region: string;
  readonly busName?: string | undefined;
  /** Only for pointing the SDK at an EventBridge-protocol test endpoint. */
  readonly endpoint?: string | undefined;
}): RotationEvents {
  if (options.busName === undefined) return new LogRotationEvents(options.logger);
  const client = new EventBridgeClient({
    region: options.region,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
  });
  return new EventBridgeRotationEvents(client, options.busName);
}
