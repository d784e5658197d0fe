/**
 * A test double for EventBridge PutEvents: no EventBridge runs here, so this loopback server speaks the
 * awsJson1_1 protocol the real `@aws-sdk/client-eventbridge` uses (`X-Amz-Target: AWSEvents.PutEvents`)
 * and records every entry it accepts. Signatures are not checked.
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedEvent {
  readonly EventBusName?: string;
  readonly Source?: string;
  readonly DetailType?: string;
  readonly Detail?: string;
}

export interface EventBridgeEndpoint {
  readonly endpoint: string;
  readonly received: ReceivedEvent[];
  /** Raw request bodies, for checking that nothing secret went over the wire. */
  readonly bodies: string[];
  close(): Promise<void>;
}

export async function startEventBridgeEndpoint(): Promise<EventBridgeEndpoint> {
  const received: ReceivedEvent[] = [];
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, {
          "content-type": "application/x-amz-json-1.1",
          "x-amzn-requestid": randomUUID(),
        });
        res.end(JSON.stringify(body));
      };
      if (req.headers["x-amz-target"] !== "AWSEvents.PutEvents") {
        reply(400, { __type: "UnknownOperationException", message: "only PutEvents is faked" });
        return;
      }
      bodies.push(text);
      const entries = (JSON.parse(text) as { Entries?: ReceivedEvent[] }).Entries ?? [];
      if (entries.length === 0 || entries.length > 10) {
        reply(400, { __type: "ValidationException", message: "1 to 10 entries per call" });
        return;
      }
      received.push(...entries);
      reply(200, { FailedEntryCount: 0, Entries: entries.map(() => ({ EventId: randomUUID() })) });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    received,
    bodies,
    close() {
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
