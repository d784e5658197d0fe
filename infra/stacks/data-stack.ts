import { Duration, RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as events from "aws-cdk-lib/aws-events";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "../config.ts";
import {
  cloudFormationRoleArn,
  functionRoleArn,
  functionRoleUse,
  keyAdministratorArns,
  keyPolicy,
} from "./key-policies.ts";

/** The encryption-context key every KEK call carries (shared/crypto/keyring.ts encryptionContext). */
export const TENANT_CONTEXT_KEY = "strongbox:tenant";
/** `Null: false` on this condition key means "the tenant context key is present". */
export const TENANT_CONTEXT_CONDITION = `kms:EncryptionContext:${TENANT_CONTEXT_KEY}`;
/**
 * The tenant context of data keys that belong to no tenant: a wrapped payload's, which for a wrapped
 * token is a whole admin token (shared/domain/types.ts SYSTEM_SCOPE).
 */
export const SYSTEM_TENANT_CONTEXT = "_system";

/**
 * The anchor bucket's name, from the stage, account and region alone: the function stacks name it (and
 * their grants its ARN) without a cross-stack export, and an operator can tell it from the stage.
 */
export const auditAnchorBucketName = (stack: Stack, config: EnvironmentConfig): string =>
  `strongbox-${config.name}-audit-anchors-${stack.account}-${stack.region}`;

export interface DataStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

/**
 * The environment's stateful half: its KEK, its audit MAC key, its table (with its own key), its
 * bootstrap secret (with its own key) and its event bus. Nothing here is shared with another
 * environment, so a leaked dev KEK opens nothing in prod. Every key has an explicit policy
 * (./key-policies.ts): the stage's key administrator role and CloudFormation administer it, and only
 * the function roles named there use it.
 */
export class DataStack extends Stack {
  readonly table: dynamodb.Table;
  /** The KEK: wraps tenant DEKs; usable only with a tenant in the encryption context. */
  readonly kek: kms.Key;
  /** Encrypts the table at rest, used by DynamoDB on behalf of the roles the table lets in. */
  readonly tableKey: kms.Key;
  readonly auditMacKey: kms.Key;
  readonly bootstrapSecret: secretsmanager.Secret;
  /** Encrypts the bootstrap secret; usable only by the API role, only through Secrets Manager. */
  readonly bootstrapSecretKey: kms.Key;
  /** The stage's own bus: its events never meet another stage's on the account's default bus. */
  readonly bus: events.EventBus;
  /** Audit chain heads, anchored outside the table (docs/audit-chain.md#anchors). */
  readonly auditAnchors: s3.Bucket;

  constructor(scope: Construct, id: string, props: DataStackProps) {
    super(scope, id, props);
    const { config } = props;
    const removalPolicy = config.protectData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    const tableName = `strongbox-${config.name}`;
    const dynamoService = `dynamodb.${this.region}.amazonaws.com`;

    const use = (options: Parameters<typeof functionRoleUse>[2]) => functionRoleUse(this, config, options);

    this.kek = new kms.Key(this, "Kek", {
      alias: `alias/strongbox-${config.name}`,
      description: `Strongbox ${config.name} KEK: wraps tenant DEKs, nothing else`,
      enableKeyRotation: true,
      removalPolicy,
      policy: keyPolicy(this, config, [
        use({
          sid: "ApiWrapsAndUnwraps",
          functions: ["api"],
          actions: ["kms:GenerateDataKey", "kms:Decrypt"],
        }),
        use({
          sid: "RotationWrapsUnwrapsAndReWraps",
          functions: ["rotation"],
          actions: ["kms:GenerateDataKey", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
        }),
        // The keyring describes the KEK at start-up; the audit function builds one too, and uses it for nothing else.
        use({
          sid: "ServiceRolesDescribe",
          functions: ["api", "rotation", "audit"],
          actions: ["kms:DescribeKey"],
        }),
      ]),
    });
    // Whatever else allows it, a direct cryptographic call without the tenant in its encryption context
    // is refused, so a DEK can only be unwrapped for the tenant it was generated for.
    this.kek.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "RequireTenantEncryptionContext",
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
        resources: ["*"],
        conditions: {
          Null: { [TENANT_CONTEXT_CONDITION]: "true" },
        },
      }),
    );
    // The rotation role decrypts every tenant's DEKs, but a `_system` data key opens a wrapped payload,
    // an admin token among them: it may never have one in the clear, make one or re-encrypt one,
    // whatever else (an identity policy, a grant) allows it. Re-encrypt too: KMS authorizes a ReEncrypt's
    // source and destination contexts apart, so one from `_system` into a tenant's context would pass
    // both sides and leave a key this role may decrypt.
    this.kek.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "RotationNeverOpensSystemDataKeys",
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
        resources: ["*"],
        conditions: {
          StringEquals: { [TENANT_CONTEXT_CONDITION]: SYSTEM_TENANT_CONTEXT },
          ArnEquals: { "aws:PrincipalArn": functionRoleArn(this, config, "rotation") },
        },
      }),
    );

    // The table has its own key. Encrypting it with the KEK would put DynamoDB's own calls (no tenant
    // context, grants) among the KEK's CloudTrail events, where the audit function rightly flags them.
    // DynamoDB calls the key for table encryption with its own context, on behalf of callers that already
    // passed the table's IAM policy; letting it through here keeps KMS out of every role's table access.
    this.tableKey = new kms.Key(this, "TableKey", {
      alias: `alias/strongbox-${config.name}-table`,
      description: `Strongbox ${config.name}: encryption at rest of the ${tableName} table`,
      enableKeyRotation: true,
      removalPolicy,
      policy: keyPolicy(this, config, [
        new iam.PolicyStatement({
          sid: "AllowTableEncryptionThroughDynamoDB",
          principals: [new iam.AnyPrincipal()],
          actions: [
            "kms:Decrypt",
            "kms:Encrypt",
            "kms:GenerateDataKey*",
            "kms:DescribeKey",
            "kms:CreateGrant",
          ],
          resources: ["*"],
          conditions: {
            StringEquals: {
              "kms:ViaService": dynamoService,
              "kms:CallerAccount": this.account,
              "kms:EncryptionContext:aws:dynamodb:tableName": tableName,
            },
          },
        }),
        // DescribeKey carries no encryption context, so the statement above never matches it; DynamoDB
        // describes the key when a table is created or its encryption changes.
        new iam.PolicyStatement({
          sid: "AllowKeyDescriptionThroughDynamoDB",
          principals: [new iam.AnyPrincipal()],
          actions: ["kms:DescribeKey"],
          resources: ["*"],
          conditions: {
            StringEquals: { "kms:ViaService": dynamoService, "kms:CallerAccount": this.account },
          },
        }),
      ]),
    });
    this.auditMacKey = new kms.Key(this, "AuditMacKey", {
      alias: `alias/strongbox-${config.name}-audit-mac`,
      description: `Strongbox ${config.name} audit chain MAC key`,
      keySpec: kms.KeySpec.HMAC_256,
      keyUsage: kms.KeyUsage.GENERATE_VERIFY_MAC,
      removalPolicy,
      // Whoever may GenerateMac can derive any day's chain key and so re-key the chain: only the three
      // writers of audit records. Nothing calls VerifyMac or DescribeKey on it (shared/crypto/chain-keys.ts).
      policy: keyPolicy(this, config, [
        use({
          sid: "ServiceRolesDeriveChainKeys",
          functions: ["api", "rotation", "audit"],
          actions: ["kms:GenerateMac"],
        }),
      ]),
    });

    this.table = new dynamodb.Table(this, "Table", {
      tableName,
      partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "sk", type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.tableKey,
      // The audit sequencer's input: each waiting audit record's insert, kept 24 hours by the stream
      // whatever a table writer does to the item since (docs/audit-chain.md#the-sequencer).
      stream: dynamodb.StreamViewType.NEW_IMAGE,
      deletionProtection: config.protectData,
      removalPolicy,
    });

    this.bootstrapSecretKey = this.#bootstrapSecretKey(config, removalPolicy);
    // The service accepts `sbx_<id>_<64 hex>` tokens; Secrets Manager can generate the 64 hex characters
    // (256 bits) and the service derives the id from them (shared/crypto/tokens.ts bootstrapToken).
    this.bootstrapSecret = new secretsmanager.Secret(this, "BootstrapAdminToken", {
      // Referenced rather than handed over: given the key itself, the Secret construct adds a statement
      // letting every principal of the account use it through Secrets Manager, which is what this key
      // exists to prevent. Its policy is complete as written.
      encryptionKey: kms.Key.fromKeyArn(this, "BootstrapSecretKeyRef", this.bootstrapSecretKey.keyArn),
      secretName: `strongbox/${config.name}/bootstrap-admin-token`,
      description: `Strongbox ${config.name}: secret half of the bootstrap admin token`,
      generateSecretString: {
        passwordLength: 64,
        excludeUppercase: true,
        excludePunctuation: true,
        includeSpace: false,
        excludeCharacters: "ghijklmnopqrstuvwxyz",
      },
      removalPolicy,
    });
    this.#lockBootstrapSecret(config);

    this.auditAnchors = this.#auditAnchors(config);

    this.bus = new events.EventBus(this, "Bus", { eventBusName: `strongbox-${config.name}` });
    // The rotation function acts on a re-wrap request from this bus, and consumers act on its rotation
    // events: only the two service roles may put events here, whatever other principals' IAM allows.
    this.bus.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "OnlyTheServicePublishes",
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ["events:PutEvents"],
        resources: [this.bus.eventBusArn],
        conditions: {
          ArnNotEquals: {
            "aws:PrincipalArn": [
              functionRoleArn(this, config, "api"),
              functionRoleArn(this, config, "rotation"),
            ],
          },
        },
      }),
    );
  }

  /**
   * The anchor bucket. Object Lock in compliance mode rather than governance: governance yields to any
   * principal with s3:BypassGovernanceRetention, which an account administrator has, and an
   * administrator who can also delete table records is exactly who the anchors must outlast. Versioning
   * (which Object Lock requires) keeps every version a put would replace; the policy below also makes
   * every put conditional, lets only the audit role put, refuses deletes and retention changes to
   * everyone, and the bucket's lifecycle, policy, lock and versioning to all but CloudFormation. No
   * lifecycle rule expires current versions: that puts delete markers over locked anchors, which hides
   * them from a listing of current objects (docs/deploy.md). Anchors hold hashes, no secret:
   * S3-managed encryption, no key for the roles to use.
   */
  #auditAnchors(config: EnvironmentConfig): s3.Bucket {
    const days = config.auditAnchorRetentionDays;
    const bucket = new s3.Bucket(this, "AuditAnchors", {
      bucketName: auditAnchorBucketName(this, config),
      objectLockEnabled: true,
      objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(days)),
      versioned: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      // Locked objects outlive the stack: CloudFormation could not empty the bucket to delete it.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const objects = bucket.arnForObjects("*");
    bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "OnlyCloudFormationReconfigures",
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: [
          "s3:PutLifecycleConfiguration",
          "s3:PutBucketPolicy",
          "s3:DeleteBucketPolicy",
          "s3:PutBucketObjectLockConfiguration",
          "s3:PutBucketVersioning",
        ],
        resources: [bucket.bucketArn],
        conditions: { ArnNotEquals: { "aws:PrincipalArn": cloudFormationRoleArn(this) } },
      }),
    );
    bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "NoDeletesOrRetentionChanges",
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: [
          "s3:DeleteObject",
          "s3:DeleteObjectVersion",
          "s3:PutObjectRetention",
          "s3:PutObjectLegalHold",
          "s3:BypassGovernanceRetention",
        ],
        resources: [objects],
      }),
    );
    // S3 refuses a conditional put to a key that exists; one without the condition would add a version.
    bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "OnlyConditionalWrites",
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ["s3:PutObject"],
        resources: [objects],
        conditions: { Null: { "s3:if-none-match": "true" } },
      }),
    );
    bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "OnlyTheSequencerWrites",
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ["s3:PutObject"],
        resources: [objects],
        conditions: { ArnNotEquals: { "aws:PrincipalArn": functionRoleArn(this, config, "audit") } },
      }),
    );
    return bucket;
  }

  /**
   * The bootstrap secret's own key. CloudFormation writes the generated value and the key administrator
   * may write a replacement (both through Secrets Manager, neither may decrypt); only the API role may
   * decrypt, and only through Secrets Manager, so only as GetSecretValue, which the secret's resource
   * policy (below) refuses everyone else.
   */
  #bootstrapSecretKey(config: EnvironmentConfig, removalPolicy: RemovalPolicy): kms.Key {
    const viaSecretsManager = { "kms:ViaService": `secretsmanager.${this.region}.amazonaws.com` };
    return new kms.Key(this, "BootstrapSecretKey", {
      alias: `alias/strongbox-${config.name}-bootstrap-secret`,
      description: `Strongbox ${config.name}: the bootstrap admin token secret, nothing else`,
      enableKeyRotation: true,
      removalPolicy,
      policy: keyPolicy(
        this,
        config,
        [
          functionRoleUse(this, config, {
            sid: "ApiReadsThroughSecretsManager",
            functions: ["api"],
            actions: ["kms:Decrypt", "kms:DescribeKey"],
            conditions: { StringEquals: viaSecretsManager },
          }),
          new iam.PolicyStatement({
            sid: "AdministratorsWriteThroughSecretsManager",
            principals: keyAdministratorArns(this, config).map((arn) => new iam.ArnPrincipal(arn)),
            // Encrypt: a secret moved onto this key has its existing versions re-encrypted under it.
            actions: ["kms:GenerateDataKey", "kms:Encrypt"],
            resources: ["*"],
            conditions: { StringEquals: viaSecretsManager },
          }),
        ],
        { administratorsWriteVia: viaSecretsManager["kms:ViaService"] },
      ),
    });
  }

  /**
   * Whoever reads the secret holds a 90-day admin token, and whoever writes it chooses the next one. So
   * only the API role may read it, and only the key administrator and CloudFormation may change it, its
   * key or this policy, whatever their IAM policies allow.
   */
  #lockBootstrapSecret(config: EnvironmentConfig): void {
    const notOneOf = (arns: readonly string[]) => ({ ArnNotEquals: { "aws:PrincipalArn": [...arns] } });
    this.bootstrapSecret.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "OnlyTheApiReads",
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ["secretsmanager:GetSecretValue"],
        resources: ["*"],
        conditions: notOneOf([functionRoleArn(this, config, "api")]),
      }),
    );
    this.bootstrapSecret.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "OnlyAdministratorsChange",
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: [
          "secretsmanager:PutSecretValue",
          "secretsmanager:UpdateSecret",
          "secretsmanager:UpdateSecretVersionStage",
          "secretsmanager:RotateSecret",
          "secretsmanager:CancelRotateSecret",
          "secretsmanager:PutResourcePolicy",
          "secretsmanager:DeleteResourcePolicy",
          "secretsmanager:DeleteSecret",
          "secretsmanager:RestoreSecret",
        ],
        resources: ["*"],
        conditions: notOneOf(keyAdministratorArns(this, config)),
      }),
    );
  }
}
