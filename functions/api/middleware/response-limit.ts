import { defaultIsContentTypeBinary } from "hono/aws-lambda";
import { createMiddleware } from "hono/factory";
import type { Logger } from "../../../shared/observability/logger.ts";
import { errorBody } from "../http.ts";

/** What a synchronously invoked Lambda function may answer with: 6 MiB of response payload. */
export const LAMBDA_RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024;
/** Kept free for the status, the headers and the JSON the handler wraps the body in. */
const ENVELOPE_BYTES = 64 * 1024;
/** JSON-escaping a text body grows it at most six-fold (`\u0000`); anything this small always fits. */
const ALWAYS_FITS = Math.floor((LAMBDA_RESPONSE_LIMIT_BYTES - ENVELOPE_BYTES) / 6);

/**
 * The body's size inside the Lambda response, as hono/aws-lambda's `handle` builds it: base64 for the
 * content types it treats as binary (`application/x-ndjson` among them), a JSON string otherwise.
 */
function payloadBytes(body: Uint8Array, contentType: string | null): number {
  if (contentType !== null && defaultIsContentTypeBinary(contentType))
    return Math.ceil(body.byteLength / 3) * 4;
  return Buffer.byteLength(JSON.stringify(new TextDecoder().decode(body)));
}

/**
 * A backstop for Lambda's response limit, here and locally alike: every route bounds its own answer
 * (lists by `limit`, exports by page), and an answer that still would not fit becomes a 500
 * `response_too_large` JSON error, which the platform would otherwise turn into a bare 502 after the
 * route had already recorded its outcome. It is logged with the request id, so the two can be matched.
 */
export function responseLimit(options: { readonly logger: Logger }) {
  const { logger } = options;
  return createMiddleware<{ Variables: { requestId: string } }>(async function responseLimit(c, next) {
    await next();
    if (c.res.body === null) return;
    const body = new Uint8Array(await c.res.arrayBuffer());
    const bytes = body.byteLength <= ALWAYS_FITS ? 0 : payloadBytes(body, c.res.headers.get("content-type"));
    if (bytes + ENVELOPE_BYTES <= LAMBDA_RESPONSE_LIMIT_BYTES) {
      c.res = new Response(body, c.res);
      return;
    }
    logger.error("response too large for Lambda; answered with an error instead", {
      requestId: c.get("requestId"),
      route: c.req.routePath,
      status: c.res.status,
      payloadBytes: bytes,
    });
    // The setter keeps the old response's headers (security headers, request id), but not its type.
    c.res = new Response(
      JSON.stringify(
        errorBody(
          "response_too_large",
          "the answer would exceed the 6 MiB Lambda response limit; ask for less",
        ),
      ),
      { status: 500, headers: { "content-type": "application/json" } },
    );
    c.res.headers.delete("content-length");
  });
}
