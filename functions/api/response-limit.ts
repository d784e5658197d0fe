import type { handle } from "hono/aws-lambda";
import type { Logger } from "../../shared/observability/logger.ts";
import { errorBody } from "./http.ts";

/** What a synchronously invoked Lambda function may answer with: 6 MiB of response payload. */
export const LAMBDA_RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024;

type LambdaHandler = ReturnType<typeof handle>;

/** The part of the Lambda adapter's result this guard reads and rewrites. */
interface LambdaResult {
  readonly statusCode: number;
  readonly headers?: Record<string, string | string[]> | undefined;
  readonly multiValueHeaders?: Record<string, string[]> | undefined;
}

const ERROR_BODY = JSON.stringify(
  errorBody("response_too_large", "the answer would exceed the 6 MiB Lambda response limit; ask for less"),
);

/**
 * A backstop for Lambda's response limit, around the adapter's handler: the result is measured as
 * Lambda will see it (the adapter has already buffered and, for NDJSON, base64-encoded the body), so
 * nothing is guessed and a request pays one JSON.stringify of what it answers. Every route bounds its
 * own answer (lists by `limit`, exports by page); one that would still not fit becomes a 500
 * `response_too_large` JSON error instead of the bare 502 the platform would give after the route had
 * already recorded its outcome. It is logged with the request id, so the two can be matched.
 */
export function withResponseLimit(handler: LambdaHandler, logger: Logger): LambdaHandler {
  const guarded = async (event: Parameters<LambdaHandler>[0], context?: Parameters<LambdaHandler>[1]) => {
    const result = await handler(event, context);
    const bytes = Buffer.byteLength(JSON.stringify(result));
    return bytes <= LAMBDA_RESPONSE_LIMIT_BYTES ? result : tooLarge(result, bytes, logger);
  };
  // The adapter's type ties the result's header shape to the event's; the guard keeps whichever it got.
  return guarded as unknown as LambdaHandler;
}

function tooLarge(result: LambdaResult, bytes: number, logger: Logger) {
  const requestId = [
    result.headers?.["x-request-id"] ?? result.multiValueHeaders?.["x-request-id"] ?? "unknown",
  ].flat()[0];
  logger.error("response too large for Lambda; answered with an error instead", {
    requestId,
    status: result.statusCode,
    payloadBytes: bytes,
  });
  // The other headers (security headers, the request id) stay; the body's own do not.
  const others = <V>(headers: Record<string, V>) =>
    Object.fromEntries(
      Object.entries(headers).filter(([name]) => name !== "content-type" && name !== "content-length"),
    );
  return {
    ...result,
    statusCode: 500,
    body: ERROR_BODY,
    isBase64Encoded: false,
    ...(result.headers === undefined
      ? {}
      : { headers: { ...others(result.headers), "content-type": "application/json" } }),
    ...(result.multiValueHeaders === undefined
      ? {}
      : { multiValueHeaders: { ...others(result.multiValueHeaders), "content-type": ["application/json"] } }),
  };
}
