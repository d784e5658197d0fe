import { Hono } from "hono";
import * as z from "zod";
import { bindingIdSchema, createBindingSchema } from "../../../shared/domain/schemas.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody, pageBody, pageOf, parseWith, queryWith } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { bindingBody, bindingsPageBody } from "../openapi/bodies.ts";
import { JSON_BODY } from "../openapi/error-codes.ts";
import { documented } from "../openapi/route-doc.ts";
import { pageQuerySchema } from "../schemas.ts";

/** IAM principals' bindings to a role and tenants: admin only (docs/api.md#bindings). */
export function bindingRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

  app.post(
    "/v1/bindings",
    documented({
      operationId: "createBinding",
      summary: "Bind an IAM role or user to a role and tenants",
      description:
        'Its sessions then call the `/iam/v1` routes with SigV4. `principalArn` is a role or user ARN, never an assumed-role session; an admin binding is global (`tenants: ["*"]`), any other role names tenants, each of which must exist. One binding per principal: a second is a 409 until the first is deleted.',
      tag: "bindings",
      operation: "binding.create",
      body: createBindingSchema,
      responses: { 201: { description: "the binding", schema: bindingBody } },
      errors: [...JSON_BODY, "not_found", "conflict"],
    }),
    authenticated("binding.create"),
    async (c) => {
      const input = await jsonBody(c, createBindingSchema);
      return c.json(await runtime.bindings.create(c.var.ctx, input), 201);
    },
  );

  app.get(
    "/v1/bindings",
    documented({
      operationId: "listBindings",
      summary: "List the live bindings",
      tag: "bindings",
      operation: "binding.list",
      query: pageQuerySchema,
      responses: { 200: { description: "one page of bindings", schema: bindingsPageBody } },
    }),
    authenticated("binding.list"),
    async (c) => {
      const { limit, cursor } = pageOf(queryWith(c, pageQuerySchema));
      return c.json(pageBody("bindings", await runtime.bindings.list(c.var.ctx, limit, cursor)));
    },
  );

  app.delete(
    "/v1/bindings/:id",
    documented({
      operationId: "deleteBinding",
      summary: "Delete a binding; its principal is refused from its next request on",
      tag: "bindings",
      operation: "binding.delete",
      path: z.strictObject({ id: bindingIdSchema }),
      responses: { 204: { description: "deleted" } },
      errors: ["not_found"],
    }),
    authenticated("binding.delete"),
    async (c) => {
      await runtime.bindings.delete(c.var.ctx, parseWith(bindingIdSchema, c.req.param("id"), "id"));
      return c.body(null, 204);
    },
  );

  return app;
}
