import type { Env, Handler, Hono } from "hono";
import { generateSpecs } from "hono-openapi";
import type { OpenAPIV3_1 } from "openapi-types";
import { ERROR_CODES } from "./error-codes.ts";

/** The API's version in the document; bumped with a breaking change of the contract. */
const API_VERSION = "1.0.0";

const DOCUMENTATION = {
  openapi: "3.1.0",
  info: {
    title: "Strongbox",
    version: API_VERSION,
    description:
      'Multi-tenant secrets service. Every error is `{"error":{"code","message"}}`; every answer carries `X-Request-Id`. On AWS every `/v1` route is also served under `/iam/v1`, where a request is signed with SigV4 (service `execute-api`) instead of carrying a token, and the caller\'s IAM principal is mapped to a role and tenants by its binding (`/v1/bindings`).',
  },
  tags: [
    { name: "service" },
    { name: "tenants" },
    { name: "secrets" },
    { name: "rotation" },
    { name: "keys" },
    { name: "audit" },
    { name: "tokens" },
    { name: "bindings" },
  ],
  components: {
    securitySchemes: {
      bearerToken: { type: "http", scheme: "bearer", description: "an `sbx_…` token from POST /v1/tokens" },
    },
    schemas: {
      ErrorCode: { type: "string", enum: [...ERROR_CODES] },
    },
  },
} satisfies Partial<OpenAPIV3_1.Document>;

export type OpenApiDocument = Awaited<ReturnType<typeof generateSpecs>>;

/** The document of every route mounted on `app`, drawn from the documentation beside each route. */
export function openApiDocument<E extends Env>(app: Hono<E>): Promise<OpenApiDocument> {
  return generateSpecs(app, {
    documentation: DOCUMENTATION,
    // `/openapi.json` is a route like any other, not a static file.
    excludeStaticFile: false,
    defaultValidationErrorResponse: false,
  });
}

/**
 * `GET /openapi.json`: built on the first request and kept, so neither a cold start nor a later
 * request pays for it again. `app` is read then, once every route is mounted.
 */
export function openApiHandler<E extends Env>(app: Hono<E>): Handler<E> {
  let document: Promise<OpenApiDocument> | undefined;
  return async (c) => {
    document ??= openApiDocument(app).catch((error: unknown) => {
      document = undefined;
      throw error;
    });
    return c.json(await document);
  };
}
