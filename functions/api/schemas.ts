import * as z from "zod";
import type { AuditFilter } from "../../shared/domain/audit-chain.ts";
import { AUDIT_ACTIONS } from "../../shared/domain/operations.ts";
import { secretNameSchema, tenantIdSchema } from "../../shared/domain/schemas.ts";
import { STAGES } from "../../shared/domain/types.ts";
import { decodeAuditReason } from "./audit-reason.ts";

// The shapes of the query strings and headers the HTTP API takes; the bodies' shapes are the domain's.

const MAX_REASON_LENGTH = 256;

/** The reason as the client meant it (see `decodeAuditReason`), then held to the limits as text. */
export const auditReasonSchema = z
  .string()
  .transform((raw, ctx) => {
    const text = decodeAuditReason(raw);
    if (text !== undefined) return text;
    ctx.issues.push({
      code: "custom",
      input: raw,
      message: "X-Audit-Reason in the UTF-8'' form must be percent-encoded UTF-8",
    });
    return z.NEVER;
  })
  .pipe(
    z
      .string()
      .trim()
      .min(1, "X-Audit-Reason header is required")
      .max(MAX_REASON_LENGTH, `X-Audit-Reason must be at most ${MAX_REASON_LENGTH} characters`)
      .regex(/^[^\p{Cc}]*$/u, "X-Audit-Reason must not contain control characters"),
  );

export const versionQuerySchema = z
  .strictObject({
    version: z
      .string()
      .regex(/^[1-9][0-9]{0,8}$/, "version must be a positive integer")
      .transform(Number)
      .optional(),
    stage: z.enum(STAGES).optional(),
  })
  .refine((query) => query.version === undefined || query.stage === undefined, {
    message: "give version or stage, not both",
  });

export const pageQuerySchema = z.strictObject({
  limit: z
    .string()
    .regex(/^[1-9][0-9]{0,2}$/, "limit must be an integer from 1 to 999")
    .transform(Number)
    .optional(),
  cursor: z.string().max(2048).optional(),
});

export const dueQuerySchema = pageQuerySchema.extend({
  withinDays: z
    .string()
    .regex(/^[0-9]{1,4}$/, "withinDays must be an integer from 0 to 9999")
    .transform(Number)
    .optional(),
});

const auditFilterFields = {
  secret: secretNameSchema.optional(),
  actor: z
    .string()
    .regex(/^[A-Za-z0-9:/._@+=,-]{1,512}$/, "actor must be a token id or an IAM ARN")
    .optional(),
  action: z.enum(AUDIT_ACTIONS).optional(),
  outcome: z.enum(["attempt", "success", "denied", "failure"]).optional(),
  from: z.iso.datetime({ message: "from must be an ISO 8601 UTC time" }).optional(),
  to: z.iso.datetime({ message: "to must be an ISO 8601 UTC time" }).optional(),
};

const orderedRange = (query: { from?: string | undefined; to?: string | undefined }) =>
  query.from === undefined || query.to === undefined || query.from <= query.to;

/** The audit listing: a page, narrowed by any of secret, actor, action, outcome and time range. */
export const auditQuerySchema = pageQuerySchema
  .extend(auditFilterFields)
  .refine(orderedRange, { message: "from must not be after to", path: ["from"] });

/** The export takes the same filters, and a cursor where the page before it ended; its pages size themselves. */
export const auditExportQuerySchema = z
  .strictObject({ ...auditFilterFields, cursor: pageQuerySchema.shape.cursor })
  .refine(orderedRange, { message: "from must not be after to", path: ["from"] });

/** A head recorded earlier (from an export's trailer, a head read, a checkpoint) for verify to hold the chain to. */
export const auditVerifyQuerySchema = z
  .strictObject({
    expectSequence: z
      .string()
      .regex(/^[1-9][0-9]{0,11}$/, "expectSequence must be a positive integer")
      .transform(Number)
      .optional(),
    expectHash: z
      .string()
      .regex(/^[0-9a-f]{64}$/, "expectHash must be 64 lowercase hex digits")
      .optional(),
    cursor: z
      .string()
      .min(1)
      .max(1024)
      .optional()
      .describe("a previous answer's nextCursor: the walk goes on where that call's time budget ran out"),
  })
  .refine((query) => (query.expectSequence === undefined) === (query.expectHash === undefined), {
    message: "expectSequence and expectHash go together",
    path: ["expectHash"],
  });

/** The query's filter fields, under the names the repository uses. */
export function auditFilter(query: {
  secret?: string | undefined;
  actor?: string | undefined;
  action?: string | undefined;
  outcome?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
}): AuditFilter {
  const fields = {
    secretName: query.secret,
    actor: query.actor,
    action: query.action,
    outcome: query.outcome,
    from: query.from,
    to: query.to,
  };
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
}

/** The path's parameters as `tenantScope` and `secretScope` parse them, one schema each, for the document. */
export const tenantPathSchema = z.strictObject({ tenantId: tenantIdSchema });
export const secretPathSchema = tenantPathSchema.extend({ name: secretNameSchema });
