import { randomBytes } from "node:crypto";
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalDynamo, startLocalDynamo } from "../../shared/storage/local-dynamo.ts";
import { createTable, ensureTableExists } from "../../shared/storage/table.ts";
import { DUMMY_CREDENTIALS } from "../../testing/harness.ts";

type Handler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyResultV2>;

let dynamo: LocalDynamo;
let handler: Handler;

/** An API Gateway HTTP API (payload 2.0) event, as the Lambda integration delivers it. */
function httpApiEvent(
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string } = {},
) {
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: path,
    rawQueryString: "",
    headers: { host: "api.example.test", ...options.headers },
    requestContext: {
      accountId: "111122223333",
      apiId: "api",
      domainName: "api.example.test",
      domainPrefix: "api",
      http: { method, path, protocol: "HTTP/1.1", sourceIp: "127.0.0.1", userAgent: "vitest" },
      requestId: "req",
      routeKey: "$default",
      stage: "$default",
      time: "22/Nov/2026:08:00:00 +0000",
      timeEpoch: 1_795_000_000_000,
    },
    isBase64Encoded: false,
    ...(options.body === undefined ? {} : { body: options.body }),
  } satisfies APIGatewayProxyEventV2;
}

beforeAll(async () => {
  dynamo = await startLocalDynamo();
  const tableName = `lambda-${randomBytes(4).toString("hex")}`;
  await ensureTableExists(
    createTable(
      { endpoint: dynamo.endpoint, region: "us-east-1", credentials: DUMMY_CREDENTIALS },
      tableName,
    ),
  );
  Object.assign(process.env, {
    TABLE_NAME: tableName,
    DYNAMODB_ENDPOINT: dynamo.endpoint,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
    CREDENTIALS_KEK: randomBytes(32).toString("base64"),
  });
  ({ handler } = (await import("../../functions/api/handler.ts")) as unknown as { handler: Handler });
});
afterAll(() => dynamo.close());

describe("the Lambda entry point", () => {
  it("answers API Gateway HTTP API events with the same app", async () => {
    const result = await handler(httpApiEvent("GET", "/health"), {} as Context);
    expect(result).toMatchObject({ statusCode: 200 });
  });

  it("answers a request without a token with a 401 JSON error", async () => {
    const result = (await handler(
      httpApiEvent("POST", "/v1/tenants", { headers: { "content-type": "application/json" }, body: "{}" }),
      {} as Context,
    )) as { statusCode: number; body: string };
    expect(result.statusCode).toBe(401);
    expect(JSON.parse(result.body).error.code).toBe("unauthenticated");
  });
});
