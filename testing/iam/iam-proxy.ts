import { randomUUID } from "node:crypto";
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { parseRequest, type Service } from "./aws-requests.ts";
import type { IamContract, Principal, RecordedCall } from "./iam-contract.ts";

/**
 * A loopback HTTP proxy in front of the AWS stand-ins (dynalite and the KMS, Secrets Manager,
 * EventBridge and S3 endpoints). Every function process signs with its own access key id, which names its
 * principal; each request is read back into its authorizations, each is decided by the IAM contract
 * (the simulator over the stage's templates) and recorded. In `enforce` mode a denied request gets the
 * service's real AccessDeniedException instead of being forwarded; in `record` mode it goes through.
 *
 * Lambda's REST Invoke is answered here (202, the payload kept in `invocations`), since no Lambda runs.
 */
export type ProxyMode = "enforce" | "record";

export interface Invocation {
  readonly principal: string;
  readonly functionArn: string;
  readonly type: string;
  readonly payload: string;
}

export interface IamProxy {
  /** One endpoint for every service: requests are routed by their `X-Amz-Target` (S3's by their signature). */
  readonly endpoint: string;
  readonly calls: RecordedCall[];
  readonly invocations: Invocation[];
  mode: ProxyMode;
  /** Maps a dummy access key id to the principal that signs with it. */
  addCredentials(accessKeyId: string, principal: string): void;
  close(): Promise<void>;
}

/** Each service's AccessDeniedException as its SDK client parses it (awsJson: `__type` first). */
const DENIED: Record<
  Service,
  { status: number; contentType: string; body: (message: string) => unknown; header?: string }
> = {
  dynamodb: {
    status: 400,
    contentType: "application/x-amz-json-1.0",
    body: (message) => ({ __type: "com.amazon.coral.service#AccessDeniedException", Message: message }),
  },
  kms: {
    status: 400,
    contentType: "application/x-amz-json-1.1",
    body: (message) => ({ __type: "AccessDeniedException", message }),
  },
  secretsmanager: {
    status: 400,
    contentType: "application/x-amz-json-1.1",
    body: (message) => ({ __type: "AccessDeniedException", Message: message }),
  },
  events: {
    status: 400,
    contentType: "application/x-amz-json-1.1",
    body: (message) => ({ __type: "AccessDeniedException", message }),
  },
  lambda: {
    status: 403,
    contentType: "application/json",
    header: "AccessDeniedException",
    body: (message) => ({ Type: "User", Message: message }),
  },
  s3: {
    status: 403,
    contentType: "application/xml",
    body: (message) =>
      `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>${message.replace(/&/g, "&amp;").replace(/</g, "&lt;")}</Message></Error>`,
  },
};

function accessKeyOf(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  return typeof auth === "string" ? /Credential=([^/,\s]+)\//.exec(auth)?.[1] : undefined;
}

export async function startIamProxy(options: {
  readonly contract: IamContract;
  readonly upstreams: Readonly<Partial<Record<Service, string>>>;
  readonly mode?: ProxyMode;
}): Promise<IamProxy> {
  const { contract } = options;
  const credentials = new Map<string, string>();
  const calls: RecordedCall[] = [];
  const invocations: Invocation[] = [];

  const reply = (res: ServerResponse, status: number, headers: Record<string, string>, body: unknown) => {
    res.writeHead(status, { "x-amzn-requestid": randomUUID(), ...headers });
    res.end(typeof body === "string" ? body : JSON.stringify(body));
  };

  const forward = (req: IncomingMessage, res: ServerResponse, upstream: string, body: Buffer) => {
    const target = new URL(req.url ?? "/", upstream);
    const outgoing = httpRequest(
      target,
      { method: req.method, headers: { ...req.headers, host: target.host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    outgoing.on("error", (error) =>
      reply(res, 502, {}, { __type: "InternalFailure", message: String(error) }),
    );
    outgoing.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const accessKey = accessKeyOf(req);
    const label = accessKey === undefined ? undefined : credentials.get(accessKey);
    if (label === undefined) {
      // As AWS answers a key it does not know; no policy is evaluated for an unknown caller.
      return reply(
        res,
        400,
        { "content-type": "application/x-amz-json-1.1" },
        {
          __type: "UnrecognizedClientException",
          message: "The security token included in the request is invalid.",
        },
      );
    }
    const principal: Principal = contract.principal(label);
    const parsed = parseRequest(
      {
        method: req.method ?? "POST",
        path: req.url ?? "/",
        headers: req.headers,
        body: body.toString("utf8"),
      },
      contract.directory,
      principal.account,
    );
    const decided = await Promise.all(
      parsed.authorizations.map(async (authorization) => {
        const decision = await contract.authorize(principal, authorization);
        const call: RecordedCall = {
          principal: label,
          service: parsed.service ?? "unknown",
          operation: parsed.operation,
          action: authorization.action,
          resource: authorization.resource,
          context: authorization.context,
          ...(authorization.via === undefined ? {} : { via: authorization.via }),
          allowed: decision.allowed,
          result: decision.result,
          reason: decision.reason,
        };
        return call;
      }),
    );
    if (parsed.service === undefined) {
      calls.push({
        principal: label,
        service: "unknown",
        operation: parsed.operation,
        action: parsed.operation,
        resource: "*",
        context: {},
        allowed: false,
        result: "SimulationError",
        reason: "the IAM proxy does not know this request (testing/iam/aws-requests.ts)",
      });
      return reply(
        res,
        400,
        { "content-type": "application/x-amz-json-1.1" },
        {
          __type: "UnknownOperationException",
          message: `the IAM proxy does not know ${parsed.operation}`,
        },
      );
    }
    calls.push(...decided);
    const denied = decided.find((call) => !call.allowed);
    if (denied !== undefined && proxy.mode === "enforce") {
      const shape = DENIED[parsed.service];
      const message = `User: ${principal.arn} is not authorized to perform: ${denied.action} on resource: ${denied.resource} ${denied.reason}`;
      return reply(
        res,
        shape.status,
        {
          "content-type": shape.contentType,
          ...(shape.header === undefined ? {} : { "x-amzn-errortype": shape.header }),
        },
        shape.body(message),
      );
    }
    if (parsed.service === "lambda") {
      invocations.push({
        principal: label,
        functionArn: decided[0]?.resource ?? "",
        type: String(req.headers["x-amz-invocation-type"] ?? "RequestResponse"),
        payload: body.toString("utf8"),
      });
      return reply(res, 202, { "content-type": "application/json" }, "");
    }
    const upstream = options.upstreams[parsed.service];
    if (upstream === undefined) {
      return reply(
        res,
        400,
        { "content-type": "application/x-amz-json-1.1" },
        {
          __type: "UnknownOperationException",
          message: `no ${parsed.service} stand-in behind the IAM proxy`,
        },
      );
    }
    forward(req, res, upstream, body);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) =>
      reply(
        res,
        500,
        { "content-type": "application/x-amz-json-1.1" },
        { __type: "InternalFailure", message: String(error) },
      ),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const proxy: IamProxy = {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    invocations,
    mode: options.mode ?? "enforce",
    addCredentials(accessKeyId, principal) {
      contract.principal(principal);
      credentials.set(accessKeyId, principal);
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
  return proxy;
}
