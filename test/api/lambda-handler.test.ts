import { randomBytes } from "node:crypto";
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { type LocalDynamo, startLocalDynamo } from "../../shared/storage/local-dynamo.ts";
import { createTable, ensureTableExists, type Table } from "../../shared/storage/table.ts";
import { DUMMY_CREDENTIALS, type Harness, startHarness } from "../../testing/harness.ts";

type Handler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyResultV2>;

let dynamo: LocalDynamo;
let table: Table;
let kek: Uint8Array;
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
      // Unique per request, as API Gateway's is.
      requestId: `req-${randomBytes(6).toString("hex")}`,
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
  table = createTable(
    { endpoint: dynamo.endpoint, region: "us-east-1", credentials: DUMMY_CREDENTIALS },
    tableName,
  );
  await ensureTableExists(table);
  kek = new Uint8Array(randomBytes(32));
  Object.assign(process.env, {
    TABLE_NAME: tableName,
    DYNAMODB_ENDPOINT: dynamo.endpoint,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
    CREDENTIALS_KEK: Buffer.from(kek).toString("base64"),
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

  it("answers with API Gateway's request id, so the stage's access log (no path) joins the function's line", async () => {
    const event = httpApiEvent("GET", "/health");
    const result = (await handler(event, {} as Context)) as { headers: Record<string, string> };
    expect(result.headers["x-request-id"]).toBe(event.requestContext.requestId);
  });
});

describe("X-Audit-Reason through the Lambda entry point", () => {
  /** Set-up and look-ups go through a harness on the function's own table and KEK. */
  let h: Harness;
  let admin: string;
  const path = "/v1/tenants/lambda-acme/secrets/db-password";

  beforeAll(async () => {
    h = await startHarness({
      store: { dynamo, table },
      keyring: new LocalKeyring({ active: kek, previous: [] }),
    });
    admin = await h.token("admin");
    expect(
      (await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "lambda-acme" } })).status,
    ).toBe(201);
    expect((await h.call("PUT", path, { token: admin, body: { value: "v1" } })).status).toBe(200);
  });

  for (const [form, sent] of [
    ["RFC 8187", "UTF-8''caf%C3%A9%20%E2%82%AC"],
    ["percent-encoded UTF-8", "caf%C3%A9%20%E2%82%AC"],
    ["UTF-8 bytes one character each", Buffer.from("café €", "utf8").toString("latin1")],
    ["text the gateway decoded", "café €"],
  ] as const) {
    it(`stores a reason sent as ${form} exactly`, async () => {
      const result = (await handler(
        httpApiEvent("GET", path, { headers: { authorization: `Bearer ${admin}`, "x-audit-reason": sent } }),
        {} as Context,
      )) as { statusCode: number; headers: Record<string, string> };
      expect(result.statusCode).toBe(200);
      const requestId = result.headers["x-request-id"];
      const events = (
        await (await h.call("GET", "/v1/tenants/lambda-acme/audit?limit=999", { token: admin })).json()
      ).events as { requestId: string; action: string; reason?: string }[];
      const read = events.filter((e) => e.requestId === requestId && e.action === "secret.read");
      expect(read.map((e) => e.reason)).toEqual(["café €"]);
    });
  }
});
