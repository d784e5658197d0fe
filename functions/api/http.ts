import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type * as z from "zod";
import { StrongboxError, ValidationError } from "../../shared/domain/errors.ts";
import type { Page } from "../../shared/domain/types.ts";

/** What every request carries: its id, set first by the global middleware. */
export type AppEnv = { Variables: { requestId: string } };

const DEFAULT_PAGE_SIZE = 50;
/** On-demand rotation work stops in time to answer within API Gateway's 29-second limit. */
export const ON_DEMAND_BUDGET_MS = 20_000;

export class UnsupportedMediaTypeError extends StrongboxError {
  readonly status = 415;
  readonly code = "unsupported_media_type";
}

export function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

export function errorResponse(
  c: Context,
  status: ContentfulStatusCode,
  code: string,
  message: string,
): Response {
  return c.json(errorBody(code, message), status);
}

/** zod issues name the field and the rule, not the rejected value, so they are safe to return. */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown, where: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const details = result.error.issues
    .slice(0, 5)
    .map((issue) => {
      // zod quotes unknown keys back; a value pasted as a key by mistake must not be echoed.
      const message = issue.code === "unrecognized_keys" ? "unknown fields are not allowed" : issue.message;
      return `${[where, ...issue.path.map(String)].join(".")}: ${message}`;
    })
    .join("; ");
  throw new ValidationError(details);
}

/** The query string, parsed with a schema; issues are named `query.<field>`. */
export function queryWith<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  return parseWith(schema, c.req.query(), "query");
}

/** The page a listing asks for: its size, 50 unless the query gives one, and the cursor to go on from. */
export function pageOf(query: { limit?: number | undefined; cursor?: string | undefined }): {
  limit: number;
  cursor: string | undefined;
} {
  return { limit: query.limit ?? DEFAULT_PAGE_SIZE, cursor: query.cursor };
}

/** A listing page as JSON: the items under their own name, and a cursor only when there is more. */
export function pageBody<T>(field: string, page: Page<T>): Record<string, T[] | string> {
  return page.nextCursor === undefined
    ? { [field]: page.items }
    : { [field]: page.items, nextCursor: page.nextCursor };
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Parses a JSON body strictly: JSON content type, valid UTF-8, valid JSON, then the schema. */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const contentType = c.req.header("content-type") ?? "";
  if (!/^application\/json\s*(;\s*charset=utf-8\s*)?$/i.test(contentType)) {
    throw new UnsupportedMediaTypeError("Content-Type must be application/json");
  }
  let text: string;
  try {
    text = strictUtf8.decode(await c.req.arrayBuffer());
  } catch {
    throw new ValidationError("request body must be UTF-8");
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    // JSON.parse's own message quotes the input, which may be the very value being written.
    throw new ValidationError("request body is not valid JSON");
  }
  return parseWith(schema, data, "body");
}
