import type { APIGatewayProxyEventV2, APIGatewayProxyResult, Context } from "aws-lambda";
import type { Hono } from "hono";
import { handle } from "hono/aws-lambda";
import { type ApiResponse, readResponse } from "./harness.ts";

/**
 * Calls an app through Hono's Lambda adapter, in this process: the path API Gateway's events take on
 * Lambda (functions/api/handler.ts), where the event reaches the app as `c.env.event`. For tests that
 * need the HTTP API event itself, such as an IAM caller's `requestContext.authorizer.iam`, many times
 * over; the bundled function in a fresh process is tested with the same events in test/api/iam-callers.test.ts.
 */
export function lambdaCaller(app: Hono<any>): (event: APIGatewayProxyEventV2) => Promise<ApiResponse> {
  const handler = handle(app);
  return async (event) => {
    const result = (await handler(event as never, {} as Context)) as APIGatewayProxyResult;
    const headers = new Headers(result.headers as Record<string, string> | undefined);
    const body = result.isBase64Encoded ? Buffer.from(result.body, "base64").toString("utf8") : result.body;
    return readResponse(
      new Response(result.statusCode === 204 ? null : body, { status: result.statusCode, headers }),
    );
  };
}
