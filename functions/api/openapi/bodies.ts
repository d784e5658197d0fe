import * as z from "zod";
import { MAX_BREAK_GLASS_MINUTES } from "../../../shared/domain/break-glass.ts";
import { AUDIT_ACTIONS } from "../../../shared/domain/operations.ts";
import { REKEY_KINDS } from "../../../shared/domain/rotation.ts";
import { GENERATOR_KINDS, ROLES } from "../../../shared/domain/types.ts";

// The shapes of the answers, for the document. The request shapes are the schemas the routes parse
// with (shared/domain/schemas.ts, ../schemas.ts); these describe what the use cases return, and the
// conformance test (test/api/openapi.test.ts) holds real answers to them. Reports an operator reads
// are loose objects: their named fields are documented, more may follow.

const time = z.string().describe("ISO 8601 UTC time");
const version = z.number().int().min(1);
const count = z.number().int().min(0);
const counts = z.record(z.string(), count);
const cursor = z.string().describe("pass as `cursor` to get the next page; absent on the last page");
const chainHead = z.strictObject({ sequence: count, hash: z.string() });

export const secretValueBody = z.strictObject({
  name: z.string(),
  version,
  value: z.string(),
  createdAt: time,
  rotationDueAt: time.optional().describe("when the secret is next due for rotation, if it has a policy"),
  pendingVersion: version
    .optional()
    .describe("the version labelled pending, when one waits to be promoted: the value will change soon"),
  reference: z.string().optional().describe("the aws-sm:// reference the value was resolved from"),
});

export const secretWrittenBody = z.strictObject({ name: z.string(), version });

export const secretsPageBody = z.strictObject({
  secrets: z.array(
    z.strictObject({
      name: z.string(),
      version,
      updatedAt: time,
      pendingVersion: version.optional(),
      rotationDueAt: time.optional(),
      reference: z.string().optional().describe("the aws-sm:// reference it holds; never resolved here"),
    }),
  ),
  nextCursor: cursor.optional(),
});

const dataKey = z.strictObject({ version, kekId: z.string(), createdAt: time });
const retiredDataKey = z.strictObject({ version, kekId: z.string(), createdAt: time, retiredAt: time });

export const tenantBody = z.strictObject({
  tenantId: z.string(),
  createdAt: time,
  currentDekVersion: version,
  dataKeys: z.array(dataKey),
  retiredDataKeys: z.array(retiredDataKey).optional(),
});

export const tenantsPageBody = z.strictObject({
  tenants: z.array(z.strictObject({ tenantId: z.string() })),
  nextCursor: cursor.optional(),
});

export const tokenIssuedBody = z.strictObject({
  id: z.string(),
  token: z.string().describe("sbx_…, shown once"),
  expiresAt: time,
});

export const bindingBody = z.strictObject({
  bindingId: z.string().describe("derived from the principal: one binding per principal"),
  principalArn: z.string().describe("the IAM role or user ARN bound, path included"),
  role: z.enum(ROLES),
  tenants: z.array(z.string()),
  createdAt: time,
});

export const bindingsPageBody = z.strictObject({
  bindings: z.array(bindingBody),
  nextCursor: cursor.optional(),
});

const generator = z.strictObject({
  kind: z.enum(GENERATOR_KINDS),
  length: z.number().int(),
  alphabet: z.string().optional(),
});

export const rotationPolicyBody = z.strictObject({
  name: z.string(),
  rotationPeriodDays: z.number().int().optional(),
  rotationDueAt: time.optional(),
  generator: generator.optional(),
  lastRotatedAt: time.optional(),
  verifier: z
    .union([z.strictObject({ url: z.string() }), z.strictObject({ lambdaArn: z.string() })])
    .optional(),
});

export const rotateResultBody = z.union([
  z.strictObject({ name: z.string(), status: z.literal("rotated"), version, previousVersion: count }),
  z.strictObject({ name: z.string(), status: z.literal("awaiting_value"), rotationDueAt: time }),
]);

export const labelsBody = z.strictObject({
  name: z.string(),
  current: version,
  previous: version.optional(),
  pending: version.optional(),
});

export const dueSecretsPageBody = z.strictObject({
  secrets: z.array(
    z.strictObject({
      name: z.string(),
      version,
      rotationDueAt: time,
      overdue: z.boolean(),
      rotatedBy: z.enum(["generated", "byok"]),
      pendingVersion: version.optional(),
    }),
  ),
  nextCursor: cursor.optional(),
});

export const dekRotatedBody = z.strictObject({ tenantId: z.string(), dekVersion: version });

export const dekStatusBody = z.looseObject({
  tenantId: z.string(),
  currentDekVersion: version,
  dataKeys: z.array(z.strictObject({ version, kekId: z.string(), createdAt: time, items: count })),
  retiredDataKeys: z.array(retiredDataKey),
  itemsByDekVersion: counts,
  sweep: z.looseObject({ targetDekVersion: version, phase: z.string() }).optional(),
});

const rewrapState = z.looseObject({
  targetKekId: z.string(),
  phase: z.enum(["rewrap", "done"]),
  pass: version,
  tenantsScanned: count,
  rewrapped: count,
  dataKeysByKek: counts,
  failedByKek: counts,
  rekey: z
    .looseObject({
      step: z.enum(["items", "chains"]),
      kind: z.enum(REKEY_KINDS).optional(),
      itemsRekeyed: count,
      itemIntegrityFailures: count,
      chainsReanchored: count,
      chainsBroken: z.array(z.string()),
    })
    .optional(),
});

export const kekReportBody = z.looseObject({
  activeKekId: z.string(),
  keks: z.array(
    z.looseObject({
      kekId: z.string(),
      configured: z.enum(["active", "previous", "no"]),
      dataKeys: count,
      registered: z.boolean(),
      mayBeRemoved: z.boolean(),
      status: z.string(),
    }),
  ),
  rewrap: rewrapState.optional(),
});

export const rewrapRequestBody = z.strictObject({ started: z.boolean(), state: rewrapState });

export const runSummaryBody = z.looseObject({
  startedAt: time,
  finishedAt: time,
  sweeps: z.array(z.looseObject({ tenantId: z.string(), phase: z.string(), resealed: count })),
  rewrap: z.looseObject({ phase: z.string(), rewrapped: count, stoppedBecause: z.string() }).optional(),
  due: z.looseObject({ found: count, rotated: count, notified: count, failed: count }),
  events: count,
  outOfTime: z.boolean(),
});

export const publicHealthBody = z.strictObject({ status: z.enum(["ok", "unavailable", "sealed"]) });

export const healthReportBody = z.looseObject({
  healthy: z.boolean(),
  keyring: z.looseObject({
    kind: z.string(),
    activeKekId: z.string(),
    status: z.enum(["ok", "unavailable"]),
  }),
  store: z.looseObject({ status: z.enum(["ok", "unavailable"]) }),
  audit: z.looseObject({
    heads: z.array(z.looseObject({ scope: z.string(), sequence: count, hash: z.string() })),
    knownChains: count,
  }),
  problems: z.array(z.string()),
  warnings: z.array(z.string()),
});

export const auditRecord = z.looseObject({
  tenantId: z.string(),
  action: z.enum(AUDIT_ACTIONS),
  outcome: z.enum(["attempt", "success", "denied", "failure"]),
  actor: z.string(),
  role: z.enum([...ROLES, "anonymous", "aws", "system"]),
  requestId: z.string(),
  time,
  secretName: z.string().optional(),
  version: z.number().int().optional(),
  reason: z.string().optional(),
  detail: z.string().optional(),
  count: z.number().int().optional(),
  severity: z.literal("high").optional(),
  sequence: version,
  prevHash: z.string(),
  hash: z.string(),
  mac: z.string(),
  macKeyRef: z.string(),
});

export const auditPageBody = z.strictObject({ events: z.array(auditRecord), nextCursor: cursor.optional() });

/** JSON lines: records, then the trailer `{"end":true,"records","lastSequence"?,"lastHash"?,"nextCursor"?}`. */
export const auditExportBody = z
  .string()
  .describe("application/x-ndjson: one record per line, then a trailer");

export const auditVerifyBody = z.looseObject({
  scope: z.string(),
  intact: z.boolean(),
  verifiedThrough: count,
  records: count,
  head: chainHead.optional(),
  anchor: chainHead.optional().describe("the latest head anchored outside the table, checked against"),
  break: z.looseObject({ sequence: count, reason: z.string(), message: z.string() }).optional(),
  nextCursor: z
    .string()
    .optional()
    .describe("present when this call's time budget ran out: ask again with ?cursor= to go on"),
  summary: z.string(),
});

export const auditHeadBody = z.strictObject({
  scope: z.string(),
  head: chainHead.optional(),
  appendedHere: chainHead.optional(),
});

export const metricsBody = z.string().describe("Prometheus text format, version 0.0.4");

/** The document itself, described loosely: it is its own schema. */
export const openApiBody = z.looseObject({
  openapi: z.string(),
  info: z.looseObject({}),
  paths: z.looseObject({}),
});

// The secret lifecycle (issue 12 items 5 and 6).
export const versionsPageBody = z.strictObject({
  name: z.string(),
  deletedAt: time.optional(),
  versions: z.array(
    z.strictObject({
      version,
      createdAt: time,
      createdBy: z.string().optional(),
      labels: z.array(z.enum(["current", "pending", "previous"])),
      dekVersion: version.optional(),
      destroyed: z.boolean(),
      destroyedAt: time.optional(),
    }),
  ),
  nextCursor: cursor.optional(),
});

const deletionCounts = z.strictObject({ secrets: count, versions: count, other: count });

const deletionCertificate = z.strictObject({
  tenantId: z.string(),
  requestedBy: z.string(),
  shreddedAt: time,
  completedAt: time,
  dekVersionsDestroyed: z.array(version),
  items: deletionCounts,
  auditHead: chainHead.nullable(),
  mac: z.string(),
  macKeyRef: z.string(),
});

export const tenantDeletedBody = z.strictObject({
  status: z.literal("deleted"),
  certificate: deletionCertificate,
});

export const tenantDeletingBody = z.strictObject({
  status: z.literal("deleting"),
  phase: z.enum(["census", "remove", "done"]),
  counts: deletionCounts,
  stoppedBecause: z.enum(["deadline", "busy"]),
});

export const deletionCertificateBody = z.strictObject({
  certificate: deletionCertificate,
  verified: z.boolean(),
});
// Issue 12: the kill switch, response wrapping, break-glass and the access review.

export const sealViewBody = z.strictObject({
  scope: z.string().describe("the tenant, or `*` for the global seal"),
  sealed: z.boolean(),
  reason: z.string(),
  changedBy: z.string().describe("the token id that last sealed or unsealed"),
  changedAt: z.string().describe("ISO 8601 UTC time; empty if never sealed"),
  unsealRequestedBy: z.string().optional().describe("set while an unseal waits for a second admin"),
});

const wrapKind = z.enum(["secret.read", "token.create"]);
const wrapInfo = {
  id: z.string(),
  kind: wrapKind,
  creator: z.string().describe("the token id that asked for the wrapped response"),
  createdAt: time,
  expiresAt: time,
};

export const wrapInfoBody = z.strictObject(wrapInfo);

/** What a read or a token creation answers with `wrapTtlSeconds`: a single-use wrapping token instead. */
export const wrappedBody = z.strictObject({
  wrap: z.strictObject({ token: z.string().describe("sbw_…, shown once"), ...wrapInfo }),
});

export const unwrappedBody = z.union([
  z.strictObject({ kind: z.literal("secret.read"), data: secretValueBody }),
  z.strictObject({ kind: z.literal("token.create"), data: tokenIssuedBody }),
]);

export const breakGlassBody = z.strictObject({
  id: z.string(),
  tenantId: z.string(),
  requester: z.string(),
  reason: z.string(),
  durationMinutes: z.number().int().min(1).max(MAX_BREAK_GLASS_MINUTES),
  status: z.enum(["pending", "approved", "active", "revoked"]),
  createdAt: time,
  approver: z.string().optional(),
  approvedAt: time.optional(),
  expiresAt: time.optional().describe("the deadline: approval time plus the duration"),
  revokedAt: time.optional(),
  revokedBy: z.string().optional(),
});

export const breakGlassCredentialBody = z.strictObject({
  id: z.string(),
  credential: z.string().describe("sbg_…, shown once"),
  expiresAt: time,
});

export const tokenMetadataBody = z.strictObject({
  id: z.string(),
  status: z.enum(["active", "revoked", "expired", "failed_integrity"]),
  role: z.enum(ROLES).optional(),
  tenants: z.array(z.string()).optional(),
  createdAt: time.optional(),
  expiresAt: time.optional(),
  revokedAt: time.optional(),
});

export const tokensPageBody = z.strictObject({
  tokens: z.array(tokenMetadataBody),
  nextCursor: cursor.optional(),
});
