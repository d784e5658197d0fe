import { Hono } from "hono";
import {
  promoteSchema,
  rollbackSchema,
  rotateSecretSchema,
  rotationPolicySchema,
} from "../../../shared/domain/schemas.ts";
import { deadlineIn } from "../../../shared/domain/work.ts";
import type { Runtime } from "../../../shared/runtime/container.ts";
import { type AppEnv, jsonBody, ON_DEMAND_BUDGET_MS, pageBody, pageOf, queryWith } from "../http.ts";
import { authenticator } from "../middleware/authenticate.ts";
import { secretScope, tenantScope } from "../middleware/tenant-scope.ts";
import {
  dueSecretsPageBody,
  labelsBody,
  rotateResultBody,
  rotationPolicyBody,
  runSummaryBody,
} from "../openapi/bodies.ts";
import { JSON_BODY, SEALED } from "../openapi/error-codes.ts";
import { documented } from "../openapi/route-doc.ts";
import { dueQuerySchema, secretPathSchema, tenantPathSchema } from "../schemas.ts";

const DEFAULT_DUE_WITHIN_DAYS = 7;

/** Secrets' rotation: policies, on-demand rotations, promotion and rollback, what is due, and runs. */
export function rotationRoutes(runtime: Runtime): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const authenticated = authenticator(runtime.callers);

  app.put(
    "/v1/tenants/:tenantId/secrets/:name/rotation",
    documented({
      operationId: "setRotationPolicy",
      summary: "Set a secret's rotation policy, which gives its rotationDueAt",
      description: "`null` clears a setting; an absent field leaves it as it is.",
      tag: "rotation",
      operation: "secret.rotation-policy",
      path: secretPathSchema,
      body: rotationPolicySchema,
      responses: { 200: { description: "the policy", schema: rotationPolicyBody } },
      errors: [...JSON_BODY, "not_found", "conflict"],
    }),
    authenticated("secret.rotation-policy"),
    secretScope(),
    async (c) => {
      const body = await jsonBody(c, rotationPolicySchema);
      return c.json(await runtime.rotationPolicies.setPolicy(c.var.ctx, c.var.tenantId, c.var.name, body));
    },
  );

  app.post(
    "/v1/tenants/:tenantId/secrets/:name/rotate",
    documented({
      operationId: "rotateSecret",
      summary: "Rotate a secret now",
      description:
        'A generated secret: create pending, test, promote. Bring-your-own: mark it due and emit "Secret Rotation Due".',
      tag: "rotation",
      operation: "secret.rotate",
      path: secretPathSchema,
      body: rotateSecretSchema,
      responses: { 200: { description: "what the rotation did", schema: rotateResultBody } },
      errors: [...JSON_BODY, ...SEALED, "conflict", "verification_failed"],
    }),
    authenticated("secret.rotate"),
    secretScope(),
    async (c) => {
      const { clientRequestToken } = await jsonBody(c, rotateSecretSchema);
      return c.json(
        await runtime.valueRotation.rotate(c.var.ctx, c.var.tenantId, c.var.name, clientRequestToken),
      );
    },
  );

  app.post(
    "/v1/tenants/:tenantId/secrets/:name/promote",
    documented({
      operationId: "promoteSecret",
      summary: "Pending becomes current, current becomes previous",
      description: "Promoting what is already current is a no-op, so a retry is safe.",
      tag: "rotation",
      operation: "secret.promote",
      path: secretPathSchema,
      body: promoteSchema,
      responses: { 200: { description: "the labels after it", schema: labelsBody } },
      errors: [...JSON_BODY, "not_found", "conflict", "verification_failed"],
    }),
    authenticated("secret.promote"),
    secretScope(),
    async (c) => {
      const { version } = await jsonBody(c, promoteSchema);
      return c.json(await runtime.valueRotation.promote(c.var.ctx, c.var.tenantId, c.var.name, version));
    },
  );

  app.post(
    "/v1/tenants/:tenantId/secrets/:name/rollback",
    documented({
      operationId: "rollbackSecret",
      summary: "Make the previous version current again, re-sealed under the current DEK",
      description: "A retry once it is current is a no-op.",
      tag: "rotation",
      operation: "secret.rollback",
      path: secretPathSchema,
      body: rollbackSchema,
      responses: { 200: { description: "the labels after it", schema: labelsBody } },
      errors: [...JSON_BODY, ...SEALED, "conflict"],
    }),
    authenticated("secret.rollback"),
    secretScope(),
    async (c) => {
      const { version } = await jsonBody(c, rollbackSchema);
      return c.json(await runtime.valueRotation.rollback(c.var.ctx, c.var.tenantId, c.var.name, version));
    },
  );

  app.get(
    "/v1/tenants/:tenantId/rotation/due",
    documented({
      operationId: "listDueSecrets",
      summary: "Secrets due for rotation within withinDays (default 7; 0: due now)",
      tag: "rotation",
      operation: "rotation.read",
      path: tenantPathSchema,
      query: dueQuerySchema,
      responses: { 200: { description: "one page", schema: dueSecretsPageBody } },
      errors: ["not_found", "response_too_large"],
    }),
    authenticated("rotation.read"),
    tenantScope(),
    async (c) => {
      const query = queryWith(c, dueQuerySchema);
      const { limit, cursor } = pageOf(query);
      const within = query.withinDays ?? DEFAULT_DUE_WITHIN_DAYS;
      const due = await runtime.rotationPolicies.listDue(c.var.ctx, c.var.tenantId, within, limit, cursor);
      return c.json(pageBody("secrets", due));
    },
  );

  app.post(
    "/v1/rotation/run",
    documented({
      operationId: "runRotation",
      summary: "Run the scheduled rotation work now, for up to 20 s",
      tag: "rotation",
      operation: "rotation.run",
      responses: { 200: { description: "what the run did", schema: runSummaryBody } },
      errors: ["directory_backfill_pending", "dispatch_unavailable"],
    }),
    authenticated("rotation.run"),
    async (c) => {
      return c.json(await runtime.scheduledWork.runNow(c.var.ctx, deadlineIn(ON_DEMAND_BUDGET_MS)));
    },
  );

  return app;
}
