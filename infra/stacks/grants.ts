import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import { SYSTEM_TENANT_CONTEXT, TENANT_CONTEXT_CONDITION } from "./data-stack.ts";

/**
 * The table's partition keys as patterns, laid out by shared/storage/keys.ts (infra imports no shared
 * code; test/infra/stacks.test.ts holds the two together).
 */
export const PARTITIONS = {
  tenant: "T#*",
  token: "TOKEN#*",
  audit: "AUDIT#*",
  directory: "TENANTS",
  meta: "META",
  /** The token directory the access review lists. */
  tokenDirectory: "TOKENS",
  /** Break-glass requests and their credentials' hashes. */
  breakGlass: "BG#*",
  /** Response-wrapping items. */
  wrap: "WRAP#*",
  /** The live wraps by expiry, and every break-glass request: what the KEK re-wrap re-keys. */
  wrapDirectory: "WRAPS",
  breakGlassDirectory: "BREAK-GLASS",
  /** The kill switch's items, per tenant and global: read beside the token on every request. */
  seal: "SEAL#*",
  binding: "BINDINGS",
} as const;
export type Partition = (typeof PARTITIONS)[keyof typeof PARTITIONS];

/**
 * `ForAllValues` holds vacuously when the key is absent, so the Null guard makes the request name its
 * partition keys; every key it names must then match one of the patterns.
 */
const onlyPartitions = (partitions: readonly Partition[]) => ({
  "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [...partitions] },
  Null: { "dynamodb:LeadingKeys": "false" },
});

export interface TableAccess {
  readonly read: readonly string[];
  /** Where reads may go; unset reads anywhere in the table. */
  readonly readPartitions?: readonly Partition[];
  readonly write: readonly string[];
  /** The partitions this role writes; a write anywhere else is refused. */
  readonly writePartitions: readonly Partition[];
}

/**
 * Grants written out by hand rather than with `table.grantReadWriteData`: that helper also grants the
 * table's key (kms:Decrypt, kms:ReEncrypt*, ...) without conditions, which is exactly what the KEK's
 * least-privilege rules forbid. Table encryption is allowed by the key policy instead.
 *
 * Writes are narrowed to the partitions the role writes, so a role that may write audit blocks cannot
 * also plant a token item or change a tenant's keys.
 */
export function grantTableItems(role: iam.IRole, tableArn: string, access: TableAccess): void {
  const dynamo = (actions: readonly string[]) => actions.map((action) => `dynamodb:${action}`);
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: dynamo(access.read),
      resources: [tableArn],
      ...(access.readPartitions === undefined ? {} : { conditions: onlyPartitions(access.readPartitions) }),
    }),
  );
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: dynamo(access.write),
      resources: [tableArn],
      conditions: onlyPartitions(access.writePartitions),
    }),
  );
}

/**
 * DeleteItem, only in the given partitions: the version lifecycle's purge and the tenant-deletion sweep
 * remove items from tenant partitions (T#), and nothing else is ever deleted.
 */
export function grantItemDeletes(role: iam.IRole, tableArn: string, partitions: readonly Partition[]): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ["dynamodb:DeleteItem"],
      resources: [tableArn],
      conditions: onlyPartitions(partitions),
    }),
  );
}

/**
 * The one Scan the service makes: the one-off backfill of the tenant directory
 * (shared/storage/tenant-repository.ts ensureDirectory), which projects `tenantId` and filters on `sk`.
 * A Scan that asks for any other attribute (secret ciphertext, wrapped DEKs, token hashes) or for whole
 * items is refused. The Null guard refuses a Scan with no projection; `Select` is checked where given,
 * since a projection alone makes it SPECIFIC_ATTRIBUTES and the request need not say so.
 */
export function grantDirectoryBackfillScan(role: iam.IRole, tableArn: string): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ["dynamodb:Scan"],
      resources: [tableArn],
      conditions: {
        StringEqualsIfExists: { "dynamodb:Select": "SPECIFIC_ATTRIBUTES" },
        "ForAllValues:StringEquals": { "dynamodb:Attributes": ["pk", "sk", "tenantId"] },
        Null: { "dynamodb:Attributes": "false" },
      },
    }),
  );
}

/**
 * KEK operations, usable only with the tenant in the encryption context. `neverOpenSystemKeys` refuses
 * Decrypt, GenerateDataKey and ReEncrypt under the `_system` context (wrapped payloads' data keys)
 * whatever else allows them; the KEK's policy says the same for the rotation role.
 */
export function grantKekUse(
  role: iam.IRole,
  keys: readonly kms.IKey[],
  actions: readonly string[],
  options: { readonly neverOpenSystemKeys?: boolean } = {},
): void {
  const resources = keys.map((key) => key.keyArn);
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: actions.map((action) => `kms:${action}`),
      resources,
      conditions: { Null: { [TENANT_CONTEXT_CONDITION]: "false" } },
    }),
  );
  if (options.neverOpenSystemKeys === true) {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        actions: ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
        resources,
        conditions: { StringEquals: { [TENANT_CONTEXT_CONDITION]: SYSTEM_TENANT_CONTEXT } },
      }),
    );
  }
  // DescribeKey carries no context: the keyring resolves aliases and checks the KEK at start-up with it.
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["kms:DescribeKey"], resources }));
}

export function grantMac(role: iam.IRole, key: kms.IKey, actions: readonly string[]): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: actions.map((action) => `kms:${action}`),
      resources: [key.keyArn],
    }),
  );
}

/**
 * PutEvents on the stage's bus, only under the event sources this function publishes as. `events:source`
 * is multivalued (one value per entry of the call), so a single-valued StringEquals never matches it:
 * every entry's source must be this one, and a call must carry at least one.
 */
export function grantPutEvents(role: iam.IRole, busArn: string, sources: readonly string[]): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ["events:PutEvents"],
      resources: [busArn],
      conditions: {
        "ForAllValues:StringEquals": { "events:source": [...sources] },
        Null: { "events:source": "false" },
      },
    }),
  );
}

/** lambda:InvokeFunction on the rotation verification hooks: functions named with the stage's prefix only. */
export function grantVerifierInvoke(
  role: iam.IRole,
  scope: { partition: string; region: string; account: string },
  prefix: string,
): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ["lambda:InvokeFunction"],
      resources: [`arn:${scope.partition}:lambda:${scope.region}:${scope.account}:function:${prefix}*`],
    }),
  );
}

/**
 * Audit records enter the queue in batches of puts and chained ones leave it in batches of deletes
 * (BatchWriteItem), allowed in the audit partitions only: a role that sequences cannot delete a token,
 * a secret or a tenant's keys this way.
 */
export function grantAuditQueueBatchWrites(role: iam.IRole, tableArn: string): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ["dynamodb:BatchWriteItem"],
      resources: [tableArn],
      conditions: onlyPartitions([PARTITIONS.audit]),
    }),
  );
}

/**
 * Where the anchor log keeps its objects in the anchor bucket (shared/storage/s3-anchor-log.ts
 * ANCHOR_PREFIX; test/infra/anchor-bucket.test.ts holds the two together).
 */
export const ANCHOR_PREFIX = "anchors/";

/**
 * The audit sequencer's anchors: PutObject under the prefix (the bucket policy requires each put to be
 * conditional) and GetObject, to compare with an anchor already there. No delete, no retention change.
 */
export function grantAnchorAppend(role: iam.IRole, bucketArn: string): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ["s3:PutObject", "s3:GetObject"],
      resources: [`${bucketArn}/${ANCHOR_PREFIX}*`],
    }),
  );
}

/**
 * Verify's reads: the versions of a scope's anchors (newest first) and any version of an anchor, so that
 * one hidden behind a delete marker or under a later version is still found and read (docs/audit-chain.md#anchors).
 */
export function grantAnchorRead(role: iam.IRole, bucketArn: string): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ["s3:ListBucketVersions"],
      resources: [bucketArn],
      conditions: { StringLike: { "s3:prefix": [`${ANCHOR_PREFIX}*`] } },
    }),
  );
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ["s3:GetObjectVersion"],
      resources: [`${bucketArn}/${ANCHOR_PREFIX}*`],
    }),
  );
}
