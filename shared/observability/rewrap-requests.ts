import { type EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { DispatchUnavailableError } from "../domain/errors.ts";
import { REWRAP_REQUEST, type RewrapDispatch } from "../domain/rotation.ts";

/**
 * On AWS a re-wrap request is an event on the stage's bus, which a rule matching its source,
 * detail-type and `detail.stage` routes to the rotation function, the only role that may ReEncrypt.
 * The detail carries identifiers only: the stage and the request id.
 */
export class EventBridgeRewrapDispatch implements RewrapDispatch {
  readonly #client: EventBridgeClient;
  readonly #busName: string;
  readonly #stage: string;

  constructor(client: EventBridgeClient, busName: string, stage: string) {
    this.#client = client;
    this.#busName = busName;
    this.#stage = stage;
  }

  async request(requestId: string): Promise<void> {
    let failed: number;
    try {
      const result = await this.#client.send(
        new PutEventsCommand({
          Entries: [
            {
              EventBusName: this.#busName,
              Source: REWRAP_REQUEST.source,
              DetailType: REWRAP_REQUEST.detailType,
              Detail: JSON.stringify({ stage: this.#stage, requestId }),
            },
          ],
        }),
      );
      failed = result.FailedEntryCount ?? 0;
    } catch (error) {
      throw new DispatchUnavailableError(
        `EventBridge PutEvents failed (${error instanceof Error ? error.name : "unknown error"}): ${UNSENT}`,
        { cause: error },
      );
    }
    if (failed > 0) throw new DispatchUnavailableError(`EventBridge refused the re-wrap request: ${UNSENT}`);
  }
}

const UNSENT = "the re-wrap is recorded, and the rotation function's next scheduled run continues it";

/** A function with no bus cannot hand the re-wrap on; its requests are refused rather than lost. */
export class NoRewrapDispatch implements RewrapDispatch {
  async request(): Promise<void> {
    throw new DispatchUnavailableError(`EVENT_BUS_NAME is not set, so the request cannot be sent: ${UNSENT}`);
  }
}
