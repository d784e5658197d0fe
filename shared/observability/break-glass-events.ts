import { type EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import {
  BREAK_GLASS_ACTIVATED,
  type BreakGlassActivation,
  type BreakGlassEvents,
} from "../domain/break-glass.ts";
import { DispatchUnavailableError } from "../domain/errors.ts";
import type { Logger } from "./logger.ts";

/** On AWS: one event on the stage's bus per activation, carrying identifiers and the deadline only. */
export class EventBridgeBreakGlassEvents implements BreakGlassEvents {
  readonly #client: EventBridgeClient;
  readonly #busName: string;
  readonly #stage: string | undefined;

  constructor(client: EventBridgeClient, busName: string, stage?: string) {
    this.#client = client;
    this.#busName = busName;
    this.#stage = stage;
  }

  async activated(activation: BreakGlassActivation): Promise<void> {
    let failed: number;
    try {
      const result = await this.#client.send(
        new PutEventsCommand({
          Entries: [
            {
              EventBusName: this.#busName,
              Source: BREAK_GLASS_ACTIVATED.source,
              DetailType: BREAK_GLASS_ACTIVATED.detailType,
              Detail: JSON.stringify(
                this.#stage === undefined ? activation : { ...activation, stage: this.#stage },
              ),
            },
          ],
        }),
      );
      failed = result.FailedEntryCount ?? 0;
    } catch (error) {
      throw new DispatchUnavailableError(
        `EventBridge PutEvents failed (${error instanceof Error ? error.name : "unknown error"}); the break-glass was not activated`,
        { cause: error },
      );
    }
    if (failed > 0)
      throw new DispatchUnavailableError("EventBridge refused the activation event; not activated");
  }
}

/** Locally, and wherever no bus is configured: a warning line per activation. */
export class LogBreakGlassEvents implements BreakGlassEvents {
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  async activated(activation: BreakGlassActivation): Promise<void> {
    this.#logger.warn("break glass activated", {
      ...activation,
      detailType: BREAK_GLASS_ACTIVATED.detailType,
    });
  }
}
