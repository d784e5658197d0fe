import { Scalar } from "@scalar/hono-api-reference";
import { Hono } from "hono";

/**
 * `GET /docs`: the rendered reference of `/openapi.json`, for people reading the local server. It is
 * answered beside the API app rather than by it, so the Lambda bundle never carries it and the document
 * (which describes the API app's routes) does not list it. The page loads Scalar's script from its CDN.
 */
const reference = new Hono().get("/docs", Scalar({ url: "/openapi.json", pageTitle: "Strongbox API" }));

/** The reference page for `GET /docs`; undefined for every other request, which the API app answers. */
export function apiReference(request: Request): Response | Promise<Response> | undefined {
  if (request.method !== "GET" || new URL(request.url).pathname !== "/docs") return undefined;
  return reference.fetch(request);
}
