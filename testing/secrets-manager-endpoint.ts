/**
 * A test double for AWS Secrets Manager: no emulator runs on this machine, so this loopback server speaks
 * the part of the Secrets Manager wire protocol the service uses, for the real
 * `@aws-sdk/client-secrets-manager` to talk to over HTTP.
 *
 * The installed client (3.116x) uses awsJson1_1: `POST /`, `X-Amz-Target: secretsmanager.<Operation>`,
 * JSON bodies, errors as `{"__type":"<ErrorName>","message":"..."}`. Signatures are not checked.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface SecretsManagerEndpoint {
  /** `http://127.0.0.1:PORT`, for `SECRETS_MANAGER_ENDPOINT`. */
  readonly endpoint: string;
  /** Stores a secret string under an ARN built from `name` (or under `arn`), and returns that ARN. */
  putSecret(name: string, value: string, arn?: string): string;
  /** Sets the NextRotationDate DescribeSecret reports for the secret with this ARN. */
  setNextRotation(arn: string, next: Date | undefined): void;
  /** Requests received per operation. */
  readonly calls: Record<string, number>;
  /** The next `count` calls fail with this error type (e.g. `AccessDeniedException`). */
  failNext(errorType: string, count?: number): void;
  close(): Promise<void>;
}

export async function startSecretsManagerEndpoint(): Promise<SecretsManagerEndpoint> {
  const secrets = new Map<string, { name: string; value: string; versionId: string; nextRotation?: Date }>();
  const calls: Record<string, number> = {};
  const failures: string[] = [];

  const respond = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": randomUUID() });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, type: string, message: string) =>
    respond(res, type === "InternalServiceError" ? 500 : 400, { __type: type, message });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const target = req.headers["x-amz-target"];
    const operation = typeof target === "string" ? target.replace(/^secretsmanager\./, "") : "";
    calls[operation] = (calls[operation] ?? 0) + 1;
    const injected = failures.shift();
    if (injected !== undefined) return fail(res, injected, `injected ${injected}`);
    if (req.method !== "POST" || (operation !== "GetSecretValue" && operation !== "DescribeSecret")) {
      return fail(res, "InvalidRequestException", `${operation} is not faked`);
    }
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as { SecretId?: unknown };
    // As Secrets Manager does, a secret can be named by its ARN or by its name.
    const found =
      typeof body.SecretId === "string"
        ? [...secrets].find(([arn, s]) => arn === body.SecretId || s.name === body.SecretId)
        : undefined;
    const [arn, secret] = found ?? [];
    if (secret === undefined) {
      return fail(res, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.");
    }
    if (operation === "DescribeSecret") {
      // Metadata only, as the real DescribeSecret: no value.
      return respond(res, 200, {
        ARN: arn,
        Name: secret.name,
        ...(secret.nextRotation === undefined
          ? {}
          : { RotationEnabled: true, NextRotationDate: secret.nextRotation.getTime() / 1000 }),
      });
    }
    respond(res, 200, {
      ARN: arn,
      Name: secret.name,
      SecretString: secret.value,
      VersionId: secret.versionId,
      VersionStages: ["AWSCURRENT"],
      CreatedDate: Date.now() / 1000,
    });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => fail(res, "InternalServiceError", String(error)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    putSecret(
      name,
      value,
      arn = `arn:aws:secretsmanager:us-east-1:111122223333:secret:${name}-${randomUUID().slice(0, 6)}`,
    ) {
      secrets.set(arn, { name, value, versionId: randomUUID() });
      return arn;
    },
    setNextRotation(arn, next) {
      const secret = secrets.get(arn);
      if (secret === undefined) throw new Error(`no secret ${arn}`);
      const { nextRotation: _old, ...rest } = secret;
      secrets.set(arn, next === undefined ? rest : { ...rest, nextRotation: next });
    },
    failNext(errorType, count = 1) {
      for (let n = 0; n < count; n++) failures.push(errorType);
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
