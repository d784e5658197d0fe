import type { MiddlewareHandler } from "hono";
import { type DescribeRouteOptions, resolver, uniqueSymbol } from "hono-openapi";
import type { OpenAPIV3_1 } from "openapi-types";
import * as z from "zod";
import { type Operation, rolesAllowed } from "../../../shared/domain/operations.ts";
import { ANY_ROUTE, AUTHENTICATED, type ErrorCode, errorResponses } from "./error-codes.ts";

/** One answer a route gives besides its errors. */
export interface SuccessDoc {
  readonly description: string;
  /** The body's shape; absent for an empty body (204). */
  readonly schema?: z.ZodType;
  /** application/json unless given. */
  readonly contentType?: string;
}

/**
 * What a route's documentation says, beside the route. The request schemas are the very ones the
 * handler parses with (after authentication, which is why they are not validator middleware): the
 * document is drawn from them, so it cannot describe an input the route does not take.
 */
export interface RouteDoc {
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: string;
  /** The operation from the table; a route without one takes no token. */
  readonly operation?: Operation;
  readonly path?: z.ZodObject;
  readonly query?: z.ZodType;
  readonly headers?: z.ZodObject;
  readonly body?: z.ZodType;
  readonly responses: Readonly<Record<number, SuccessDoc>>;
  /** The codes this route adds to those of every route (and of every authenticated one). */
  readonly errors?: readonly ErrorCode[];
}

/**
 * The route's documentation as a middleware that only passes on; hono-openapi finds it among the
 * route's handlers when it walks the app (`uniqueSymbol` is its hook for middleware of one's own). The
 * OpenAPI form is built the first time the document is asked for, never at import: a cold start pays
 * nothing for it.
 */
const ROUTE_DOC = Symbol("strongbox.routeDoc");

export function documented(doc: RouteDoc): MiddlewareHandler {
  let spec: DescribeRouteOptions | undefined;
  const middleware: MiddlewareHandler = async function documented(_c, next) {
    await next();
  };
  return Object.assign(middleware, {
    [ROUTE_DOC]: doc,
    [uniqueSymbol]: {
      get spec() {
        spec ??= describe(doc);
        return spec;
      },
    },
  });
}

function describe(doc: RouteDoc): DescribeRouteOptions {
  const roles = doc.operation === undefined ? undefined : rolesAllowed(doc.operation);
  const codes = [...(doc.operation === undefined ? ANY_ROUTE : AUTHENTICATED), ...(doc.errors ?? [])];
  const who =
    roles === undefined ? "No token." : `Operation \`${doc.operation}\`; roles: ${roles.join(", ")}.`;
  return {
    operationId: doc.operationId,
    summary: doc.summary,
    description: doc.description === undefined ? who : `${doc.description}\n\n${who}`,
    tags: [doc.tag],
    security: doc.operation === undefined ? [] : [{ bearerToken: [] }],
    parameters: [
      ...parameters("path", doc.path),
      ...parameters("query", doc.query),
      ...parameters("header", doc.headers),
    ],
    ...(doc.body === undefined
      ? {}
      : {
          requestBody: {
            required: true,
            content: { "application/json": { schema: resolver(doc.body) } },
          },
        }),
    responses: { ...errorResponses(codes), ...successes(doc.responses, errorResponses(codes)) },
  };
}

/**
 * The route's own answers. One that shares a status with its errors (503 from `/v1/health`) gives
 * either body, so its schema is converted here rather than by hono-openapi's resolver.
 */
function successes(responses: RouteDoc["responses"], errors: Record<string, OpenAPIV3_1.ResponseObject>) {
  return Object.fromEntries(
    Object.entries(responses).map(([status, success]) => {
      const error = errors[status]?.content?.["application/json"]?.schema;
      if (error === undefined || success.schema === undefined) return [status, successResponse(success)];
      const own = z.toJSONSchema(success.schema, { io: "output", unrepresentable: "any" });
      const { $schema: _, ...schema } = own;
      return [
        status,
        {
          description: `${success.description}; or ${errors[status]?.description}`,
          content: { "application/json": { schema: { anyOf: [schema, error] } } },
        },
      ];
    }),
  );
}

function successResponse(success: SuccessDoc) {
  if (success.schema === undefined) return { description: success.description };
  return {
    description: success.description,
    content: {
      [success.contentType ?? "application/json"]: {
        schema: resolver(success.schema, { options: { io: "output" } }),
      },
    },
  };
}

/** hono-openapi types parameters with OpenAPI 3.0's schema object; the document it writes is 3.1, as are these. */
type Parameters = NonNullable<DescribeRouteOptions["parameters"]>;

/** One parameter per property of an object schema, in the form the client sends it (`io: input`). */
function parameters(where: "path" | "query" | "header", schema: z.ZodType | undefined): Parameters {
  if (schema === undefined) return [];
  const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as OpenAPIV3_1.SchemaObject;
  const required = new Set(json.required ?? []);
  return Object.entries(json.properties ?? {}).map(([name, property]) => {
    const { description, ...rest } = property as { description?: string };
    return {
      in: where,
      name,
      required: where === "path" || required.has(name),
      schema: rest,
      ...(description === undefined ? {} : { description }),
    };
  }) as Parameters;
}

/** The documentation a route handler carries, if it is `documented`'s: for the conformance test. */
export function routeDocOf(handler: unknown): RouteDoc | undefined {
  return typeof handler === "function" ? (handler as { [ROUTE_DOC]?: RouteDoc })[ROUTE_DOC] : undefined;
}
