import { Hono } from "hono";
import { unwrapSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody } from "../http.ts";

/**
 * Response wrapping (seed 002 §3.1). These take no bearer token: the wrapping token in the body is
 * the credential, as in Vault, so a recipient without a Strongbox token yet can unwrap its first one.
 */
export function wrappingRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/v1/unwrap", async (c) => {
    const { token } = await jsonBody(c, unwrapSchema);
    const { kind, payload } = await runtime.wrapping.unwrap(token, c.var.requestId);
    // The payload is the JSON the wrapped response would have carried.
    return c.json({ kind, data: JSON.parse(payload) as unknown });
  });

  app.post("/v1/unwrap/lookup", async (c) => {
    const { token } = await jsonBody(c, unwrapSchema);
    return c.json(await runtime.wrapping.lookup(token, c.var.requestId));
  });

  return app;
}
