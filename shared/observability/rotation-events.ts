import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import type { RotationEvent } from "../domain/rotation.ts";
import type { Logger } from "./logger.ts";

export const ROTATION_EVENT_SOURCE = "strongbox.rotation";

export interface RotationEvents {
  publish(events: readonly RotationEvent[]): Promise<void>;
}

/**
 * Every event names the stage (`STRONGBOX_ENVIRONMENT`) that published it, so rules and consumers
 * can tell dev from prod even on a shared bus; locally, without a stage, it is left out.
 */
const withStage = (event: RotationEvent, stage: string | undefined) =>
  stage === undefined ? event.detail : { ...event.detail, stage };

/** Locally, and wherever no bus is configured: one structured log line per event. */
export class LogRotationEvents implements RotationEvents {
  readonly #logger: Logger;
  readonly #stage: string | undefined;

  constructor(logger: Logger, stage?: string) {
    this.#logger = logger;
    this.#stage = stage;
  }

  async publish(events: readonly RotationEvent[]): Promise<void> {
    for (const event of events) {
      this.#logger.info("rotation event", {
        source: ROTATION_EVENT_SOURCE,
        detailType: event.detailType,
        ...withStage(event, this.#stage),
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
  readonly #stage: string | undefined;

  constructor(client: EventBridgeClient, busName: string, stage?: string) {
    this.#client = client;
    this.#busName = busName;
    this.#stage = stage;
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
            Detail: JSON.stringify(withStage(event, this.#stage)),
          })),
        }),
      );
      if ((result.FailedEntryCount ?? 0) > 0) {
        throw new Error(`EventBridge refused ${result.FailedEntryCount} of ${batch.length} rotation events`);
      }
    }
  }
}

export interface EventBusOptions {
  readonly region: string;
  readonly busName?: string | undefined;
  /** Only for pointing the SDK at an EventBridge-protocol test endpoint. */
  readonly endpoint?: string | undefined;
  /** `STRONGBOX_ENVIRONMENT`, carried in every event's detail. */
  readonly stage?: string | undefined;
}

export function createEventBridgeClient(options: EventBusOptions): EventBridgeClient {
  return new EventBridgeClient({
    region: options.region,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
  });
}

export function createRotationEvents(
  options: EventBusOptions & { readonly logger: Logger; readonly client?: EventBridgeClient },
): RotationEvents {
  if (options.busName === undefined) return new LogRotationEvents(options.logger, options.stage);
  return new EventBridgeRotationEvents(
    options.client ?? createEventBridgeClient(options),
    options.busName,
    options.stage,
  );
}
