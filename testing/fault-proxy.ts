/**
 * Wire-level fault injection: an HTTP proxy on loopback in front of a DynamoDB-protocol store
 * (dynalite) or the KMS test endpoint. The service's real SDK clients are pointed at it instead of
 * the upstream, so every injected fault meets the SDK's own retry, timeout and error classification,
 * exactly as a fault from AWS would. `testing/faults.ts` has the in-process counterpart (an SDK
 * middleware that refuses a call before it leaves the process); this one faults the wire.
 *
 * A request is chosen by its `X-Amz-Target` operation (`DynamoDB_20120810.PutItem`,
 * `TrentService.Decrypt`) and optionally its JSON body, and a rule fires on the first `count`
 * matching requests, each with `probability`.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type Service = "dynamodb" | "kms" | "unknown";

export interface ProxiedCall {
  readonly service: Service;
  /** The operation without its service prefix: `PutItem`, `Decrypt`. */
  readonly operation: string;
  /** The request's JSON body (awsJson: DynamoDB items in attribute-value form, KMS blobs in base64). */
  readonly body: Record<string, any>;
}

export type Fault =
  /** Delays the request by `ms` before it is forwarded; it then succeeds. */
  | { readonly kind: "latency"; readonly ms: number }
  /** A 400 with the service's JSON error shape: the SDK classifies these as throttling and retries. */
  | {
      readonly kind: "throttle";
      readonly error: "ProvisionedThroughputExceededException" | "ThrottlingException";
    }
  /** The service's internal error, with status 500: transient to the SDK. */
  | { readonly kind: "server-error" }
  /** Any other error the service sends, e.g. KMS's 400 InvalidCiphertextException. */
  | { readonly kind: "error"; readonly status: number; readonly type: string }
  /** Never answers; the client's own timeout must give up. The request never reaches the upstream. */
  | { readonly kind: "hang" }
  /**
   * The ambiguous commit: the request is forwarded and the upstream applies it and answers, then the
   * connection is destroyed before a byte of the answer reaches the client.
   */
  | { readonly kind: "drop-after-commit" };

export interface FaultRule {
  /** The operations it applies to (without prefix); every operation when omitted. */
  readonly operations?: readonly string[];
  /** A further test on the request, e.g. only PutItems into an audit partition. */
  readonly match?: (call: ProxiedCall) => boolean;
  readonly fault: Fault;
  /** How many matching requests it fires on at most; unbounded when omitted. */
  readonly count?: number;
  /** How many matching requests pass untouched before it starts firing; 0 when omitted. */
  readonly after?: number;
  /** The chance each matching request is faulted (0..1); 1 when omitted. */
  readonly probability?: number;
}

export interface ArmedFault {
  /** Requests this rule has faulted so far. */
  readonly fired: number;
  remove(): void;
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT`, to give the SDK client as its endpoint. */
  readonly endpoint: string;
  inject(rule: FaultRule): ArmedFault;
  /** Removes every rule; requests pass through untouched again. */
  clear(): void;
  /** Requests received per operation, faulted ones included. */
  readonly calls: Readonly<Record<string, number>>;
  resetCalls(): void;
  close(): Promise<void>;
}

/** What each service answers, in its own protocol: awsJson1_0 for DynamoDB, awsJson1_1 for KMS. */
const PROTOCOL: Record<Exclude<Service, "unknown">, { contentType: string; typePrefix: string }> = {
  dynamodb: { contentType: "application/x-amz-json-1.0", typePrefix: "com.amazonaws.dynamodb.v20120810#" },
  kms: { contentType: "application/x-amz-json-1.1", typePrefix: "" },
};

function errorOf(service: Service, fault: Fault): { status: number; type: string; message: string } {
  if (fault.kind === "error")
    return { status: fault.status, type: fault.type, message: `injected ${fault.type}` };
  if (fault.kind === "throttle") {
    if (fault.error === "ThrottlingException") {
      // DynamoDB's control-plane throttle comes from its coral front end, with that namespace.
      const type =
        service === "dynamodb" ? "com.amazon.coral.availability#ThrottlingException" : "ThrottlingException";
      return { status: 400, type, message: "Rate of requests exceeds the allowed throughput." };
    }
    return {
      status: 400,
      type: `${service === "dynamodb" ? PROTOCOL.dynamodb.typePrefix : ""}ProvisionedThroughputExceededException`,
      message: "The level of configured provisioned throughput for the table was exceeded.",
    };
  }
  return service === "kms"
    ? { status: 500, type: "KMSInternalException", message: "An internal error occurred." }
    : {
        status: 500,
        type: `${PROTOCOL.dynamodb.typePrefix}InternalServerError`,
        message: "Internal server error",
      };
}

function parseTarget(target: string | string[] | undefined): { service: Service; operation: string } {
  const value = typeof target === "string" ? target : "";
  const dot = value.indexOf(".");
  const prefix = value.slice(0, dot);
  const operation = value.slice(dot + 1);
  if (prefix.startsWith("DynamoDB_")) return { service: "dynamodb", operation };
  if (prefix === "TrentService") return { service: "kms", operation };
  return { service: "unknown", operation: value };
}

interface Rule {
  readonly rule: FaultRule;
  seen: number;
  fired: number;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  let rules: Rule[] = [];
  const calls: Record<string, number> = {};
  const sockets = new Set<Socket>();

  const choose = (call: ProxiedCall): Rule | undefined =>
    rules.find((entry) => {
      const { rule } = entry;
      if (rule.count !== undefined && entry.fired >= rule.count) return false;
      if (rule.operations !== undefined && !rule.operations.includes(call.operation)) return false;
      if (rule.match !== undefined && !rule.match(call)) return false;
      entry.seen += 1;
      return entry.seen > (rule.after ?? 0) && Math.random() < (rule.probability ?? 1);
    });

  const forward = (req: IncomingMessage, body: Buffer) =>
    new Promise<{ status: number; headers: IncomingMessage["headers"]; body: Buffer }>((resolve, reject) => {
      const out = request(
        {
          hostname: target.hostname,
          port: target.port,
          path: req.url,
          method: req.method,
          headers: { ...req.headers, host: target.host },
        },
        async (res) => {
          const chunks: Buffer[] = [];
          try {
            for await (const chunk of res) chunks.push(chunk as Buffer);
            resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) });
          } catch (error) {
            reject(error);
          }
        },
      );
      out.once("error", reject);
      out.end(body);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const { service, operation } = parseTarget(req.headers["x-amz-target"]);
    calls[operation] = (calls[operation] ?? 0) + 1;
    let body: Record<string, any> = {};
    try {
      body = raw.length === 0 ? {} : JSON.parse(raw.toString("utf8"));
    } catch {
      // Not JSON: matched by operation only.
    }
    const chosen = choose({ service, operation, body });
    if (chosen !== undefined) chosen.fired += 1;
    const fault = chosen?.rule.fault;

    if (fault?.kind === "hang") return; // The socket stays open until the client gives up.
    if (fault?.kind === "throttle" || fault?.kind === "server-error" || fault?.kind === "error") {
      const error = errorOf(service, fault);
      const contentType = service === "kms" ? PROTOCOL.kms.contentType : PROTOCOL.dynamodb.contentType;
      res.writeHead(error.status, { "content-type": contentType, "x-amzn-requestid": randomUUID() });
      res.end(JSON.stringify({ __type: error.type, message: error.message }));
      return;
    }
    if (fault?.kind === "latency") await new Promise((resolve) => setTimeout(resolve, fault.ms));

    const answer = await forward(req, raw);
    if (fault?.kind === "drop-after-commit") {
      // The upstream has applied the request and answered; the client learns nothing of it.
      req.socket.destroy();
      return;
    }
    const headers = { ...answer.headers };
    delete headers["transfer-encoding"];
    delete headers.connection;
    res.writeHead(answer.status, { ...headers, "content-length": String(answer.body.length) });
    res.end(answer.body);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      // The upstream failed to answer: as a broken network would show it to the client.
      req.socket.destroy();
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    inject(rule) {
      const entry: Rule = { rule, seen: 0, fired: 0 };
      rules.push(entry);
      return {
        get fired() {
          return entry.fired;
        },
        remove() {
          rules = rules.filter((other) => other !== entry);
        },
      };
    },
    clear() {
      rules = [];
    },
    resetCalls() {
      for (const name of Object.keys(calls)) delete calls[name];
    },
    close() {
      // Hung requests hold their sockets open; the SDK keeps idle ones alive.
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}

/** The partition key a DynamoDB request names, in its Item or its Key (attribute-value form). */
export function partitionOf(call: ProxiedCall): string | undefined {
  const pk = (call.body.Item ?? call.body.Key)?.pk?.S;
  return typeof pk === "string" ? pk : undefined;
}

/** The audit repository's appends: PutItems into an `AUDIT#<scope>` partition. */
export const auditAppend = (call: ProxiedCall): boolean =>
  call.operation === "PutItem" && (partitionOf(call)?.startsWith("AUDIT#") ?? false);

/** Writes of a secret's head or archived versions (sort keys `S#name`, `V#name#…`). */
export const secretItemWrite = (call: ProxiedCall): boolean => {
  const sk = (call.body.Item ?? call.body.Key)?.sk?.S;
  return (
    (call.operation === "PutItem" || call.operation === "UpdateItem") &&
    typeof sk === "string" &&
    (sk.startsWith("S#") || sk.startsWith("V#"))
  );
};
