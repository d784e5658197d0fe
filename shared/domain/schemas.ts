import * as z from "zod";
import { bindableKey } from "./principal-arn.ts";
import { GENERATOR_KINDS, ROLES } from "./types.ts";

export const MAX_VALUE_BYTES = 64 * 1024;
export const MAX_TOKEN_TTL_SECONDS = 366 * 24 * 3600;

export const tenantIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{1,62}$/, "tenant id must match ^[a-z0-9][a-z0-9-]{1,62}$");

export const secretNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, "secret name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$");

const utf8 = new TextEncoder();

export const secretValueSchema = z
  .string()
  .refine((value) => utf8.encode(value).byteLength <= MAX_VALUE_BYTES, {
    message: `value must be at most ${MAX_VALUE_BYTES} bytes of UTF-8`,
  })
  // A lone surrogate cannot be encoded as UTF-8 and would not read back as written.
  .refine((value) => value.isWellFormed(), { message: "value must be well-formed UTF-8 text" });

export const createTenantSchema = z.strictObject({ tenantId: tenantIdSchema });

/** Tokens of rotations the scheduled runner starts; clients may not use them. */
export const SCHEDULED_TOKEN_PREFIX = "scheduled-";

/** As Secrets Manager's ClientRequestToken: an idempotency key the client picks per intended change. */
export const clientRequestTokenSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{8,64}$/, "clientRequestToken must be 8 to 64 characters of A-Z, a-z, 0-9, _ or -")
  .refine((token) => !token.startsWith(SCHEDULED_TOKEN_PREFIX), {
    message: `clientRequestToken must not start with ${SCHEDULED_TOKEN_PREFIX}, which the scheduled runner uses`,
  });

/** Labelled versions are never pruned, so a secret may keep more than a small maximum for a while. */
export const MIN_MAX_VERSIONS = 1;
export const MAX_MAX_VERSIONS = 100;

export const putSecretSchema = z
  .strictObject({
    value: secretValueSchema.optional(),
    /** A `CredentialRef` (`aws-sm://…`) to hold instead of a value; parsed by the write (shared/domain/references.ts). */
    ref: z.string().max(4096).optional(),
    cas: z.number().int().min(0).optional(),
    clientRequestToken: clientRequestTokenSchema.optional(),
    /** `pending` writes the next version without making it current, for testing before promotion. */
    stage: z.enum(["current", "pending"]).optional(),
    /** Keep at most this many versions from now on; null lifts the limit. */
    maxVersions: z.number().int().min(MIN_MAX_VERSIONS).max(MAX_MAX_VERSIONS).nullable().optional(),
  })
  .refine((body) => (body.value === undefined) !== (body.ref === undefined), {
    message: "give value or ref, exactly one",
  });

export const MAX_ROTATION_PERIOD_DAYS = 3650;

export const generatorSchema = z
  .strictObject({
    kind: z.enum(GENERATOR_KINDS),
    length: z.number().int().min(16).max(4096),
    alphabet: z
      .string()
      .min(2)
      .max(256)
      .regex(/^[\x21-\x7e]+$/, "alphabet must be printable ASCII without spaces")
      .optional(),
  })
  .refine((spec) => spec.alphabet === undefined || new Set(spec.alphabet).size >= 2, {
    message: "alphabet needs at least two distinct characters",
    path: ["alphabet"],
  });

/** A verification hook: an HTTPS URL (local and self-hosted) or a Lambda function ARN (AWS). */
export const verifierSchema = z.union([
  z.strictObject({
    url: z
      .string()
      .max(2048)
      .refine((url) => URL.canParse(url) && new URL(url).protocol === "https:", {
        message: "verifier url must be an https:// URL",
      }),
  }),
  z.strictObject({
    lambdaArn: z
      .string()
      .regex(
        /^arn:aws(?:-[a-z]+)*:lambda:[a-z]{2}(?:-[a-z]+)+-\d:\d{12}:function:[A-Za-z0-9_-]{1,64}(?::[A-Za-z0-9_$-]{1,128})?$/,
        "verifier lambdaArn must be a Lambda function ARN",
      ),
  }),
]);

/** null clears a setting; an absent field leaves it as it is. */
export const rotationPolicySchema = z
  .strictObject({
    rotationPeriodDays: z.number().int().min(1).max(MAX_ROTATION_PERIOD_DAYS).nullable().optional(),
    generator: generatorSchema.nullable().optional(),
    verifier: verifierSchema.nullable().optional(),
  })
  .refine(
    (policy) =>
      policy.rotationPeriodDays !== undefined ||
      policy.generator !== undefined ||
      policy.verifier !== undefined,
    { message: "set rotationPeriodDays, generator, verifier, or several" },
  );

export const rotateSecretSchema = z.strictObject({ clientRequestToken: clientRequestTokenSchema.optional() });

export const promoteSchema = z.strictObject({ version: z.number().int().min(1).optional() });

/** The version to make current again: a retried rollback then finds it current and changes nothing. */
export const rollbackSchema = z.strictObject({ version: z.number().int().min(1) });

export const createTokenSchema = z
  .strictObject({
    role: z.enum(ROLES),
    tenants: z.array(z.union([tenantIdSchema, z.literal("*")])).max(100),
    ttlSeconds: z.number().int().min(60).max(MAX_TOKEN_TTL_SECONDS),
  })
  // An admin reaches every tenant and the system scope, so a tenant list would be a scope never enforced.
  .refine((token) => token.role !== "admin" || (token.tenants.length === 1 && token.tenants[0] === "*"), {
    message: 'admin tokens are global: tenants must be ["*"]; scope a token with another role',
    path: ["tenants"],
  })
  .refine((token) => token.role === "admin" || (token.tenants.length > 0 && !token.tenants.includes("*")), {
    message: "non-admin tokens need at least one tenant, and '*' is for admin tokens only",
    path: ["tenants"],
  });

export const tokenIdSchema = z.string().regex(/^[a-z0-9]{26}$/, "token id is malformed");

/** A token's scope rules, shared by bindings: admins are global, every other role names its tenants. */
const ADMIN_IS_GLOBAL = 'admin is global: tenants must be ["*"]; scope the grant with another role';
const OTHERS_NAME_TENANTS = "non-admin roles need at least one tenant, and '*' is for admin only";

export const createBindingSchema = z
  .strictObject({
    principalArn: z
      .string()
      .max(512)
      .refine((arn) => bindableKey(arn) !== undefined, {
        message:
          "principalArn must be an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME); bind a role, not its assumed-role session",
      }),
    role: z.enum(ROLES),
    tenants: z.array(z.union([tenantIdSchema, z.literal("*")])).max(100),
  })
  .refine(
    (binding) => binding.role !== "admin" || (binding.tenants.length === 1 && binding.tenants[0] === "*"),
    {
      message: ADMIN_IS_GLOBAL,
      path: ["tenants"],
    },
  )
  .refine(
    (binding) => binding.role === "admin" || (binding.tenants.length > 0 && !binding.tenants.includes("*")),
    { message: OTHERS_NAME_TENANTS, path: ["tenants"] },
  );

export const bindingIdSchema = z.string().regex(/^[a-z2-7]{26}$/, "binding id is malformed");

export type CreateBindingInput = z.infer<typeof createBindingSchema>;
export type CreateTokenInput = z.infer<typeof createTokenSchema>;
export type PutSecretInput = z.infer<typeof putSecretSchema>;
export type RotationPolicyInput = z.infer<typeof rotationPolicySchema>;

/** A tenant deletion names the tenant twice, in the path and here, so a mistyped path deletes nothing. */
export const deleteTenantSchema = z.strictObject({ confirm: z.string().max(128) });
