import { Logger } from "@aws-lambda-powertools/logger";
import { Hono } from "hono";
import { handle } from "hono/aws-lambda";
import { secureHeaders } from "hono/secure-headers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAMBDA_RESPONSE_LIMIT_BYTES, withResponseLimit } from "../../functions/api/response-limit.ts";
import { httpApiEvent } from "../../testing/http-api-event.ts";
import { captureProcessOutput, type OutputCapture } from "../../testing/output-capture.ts";

// The backstop for Lambda's response limit, around hono's Lambda adapter on a small app of its own: no
// route of the service answers this much, which is the point of the routes' own bounds.

const MIB = 1024 * 1024;
let output: OutputCapture;

const app = new Hono();
app.use(secureHeaders());
app.use(async (c, next) => {
  await next();
  c.header("X-Request-Id", "req-limit");
});
app.get("/text/:mib", (c) => c.text("a".repeat(Number(c.req.param("mib")) * MIB)));
// Every quote is escaped once the body is put in the function's JSON response: twice the bytes.
app.get("/quotes/:mib", (c) =>
  c.body('"'.repeat(Number(c.req.param("mib")) * MIB), 200, { "content-type": "application/json" }),
);
app.get("/ndjson/:kib", (c) =>
  c.body("{}\n".repeat((Number(c.req.param("kib")) * 1024) / 3), 200, {
    "content-type": "application/x-ndjson",
  }),
);
const lambda = withResponseLimit(handle(app), new Logger({ serviceName: "limit-test", logLevel: "INFO" }));
const invoke = (path: string): Promise<any> => lambda(httpApiEvent("GET", path) as never, {} as never);

beforeAll(() => {
  output = captureProcessOutput();
});
afterAll(() => output.restore());

describe("the Lambda response limit", () => {
  it.each([
    ["a 7 MiB text body", "/text/7"],
    ["3.5 MiB of JSON that escaping doubles", "/quotes/3.5"],
    ["4.6 MiB of NDJSON, 6.1 MiB once base64-encoded", "/ndjson/4710"],
  ])("turns %s into a 500 JSON error, keeping the other headers", async (_label, path) => {
    const result = await invoke(path);
    expect(result.statusCode).toBe(500);
    expect(result.isBase64Encoded).toBe(false);
    expect(JSON.parse(result.body)).toEqual({
      error: { code: "response_too_large", message: expect.stringContaining("6 MiB") },
    });
    expect(result.headers["content-type"]).toBe("application/json");
    expect(result.headers["x-content-type-options"]).toBe("nosniff");
    const logged = output.writes
      .join("")
      .split("\n")
      .filter((line) => line.includes("response too large"));
    expect(JSON.parse(logged.at(-1) ?? "{}")).toMatchObject({ requestId: "req-limit", status: 200 });
  });

  it("passes an answer that fits through unchanged", async () => {
    const result = await invoke("/ndjson/4096");
    expect(result.statusCode).toBe(200);
    expect(result.isBase64Encoded).toBe(true);
    expect(Buffer.from(result.body, "base64").toString("utf8")).toBe("{}\n".repeat((4096 * 1024) / 3));
    expect(Buffer.byteLength(JSON.stringify(result))).toBeLessThan(LAMBDA_RESPONSE_LIMIT_BYTES);
    expect((await invoke("/text/1")).body).toHaveLength(MIB);
  });
});
