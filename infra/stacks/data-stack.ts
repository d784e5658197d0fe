import { RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "../config.ts";

/** The encryption-context key every KEK call carries (shared/crypto/keyring.ts encryptionContext). */
export const TENANT_CONTEXT_KEY = "strongbox:tenant";
/** `Null: false` on this condition key means "the tenant context key is present". */
export const TENANT_CONTEXT_CONDITION = `kms:EncryptionContext:${TENANT_CONTEXT_KEY}`;

export interface DataStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

/**
 * The environment's stateful half: its KEK, its audit MAC key, its table (with its own key) and its
 * bootstrap secret. Nothing
 * here is shared with another environment, so a leaked dev KEK opens nothing in prod.
 */
export class DataStack extends Stack {
  readonly table: dynamodb.Table;
  /** The KEK: wraps tenant DEKs; usable only with a tenant in the encryption context. */
  readonly kek: kms.Key;
  /** Encrypts the table at rest, used by DynamoDB on behalf of the roles the table lets in. */
  readonly tableKey: kms.Key;
  readonly auditMacKey: kms.Key;
  readonly bootstrapSecret: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: DataStackProps) {
    super(scope, id, props);
    const { config } = props;
    const removalPolicy = config.protectData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    const tableName = `strongbox-${config.name}`;
    const dynamoService = `dynamodb.${this.region}.amazonaws.com`;

    this.kek = new kms.Key(this, "Kek", {
      alias: `alias/strongbox-${config.name}`,
      description: `Strongbox ${config.name} KEK: wraps tenant DEKs, nothing else`,
      enableKeyRotation: true,
      removalPolicy,
    });
    // Whatever IAM grants, a direct cryptographic call without the tenant in its encryption context is
    // refused, so a DEK can only be unwrapped for the tenant it was generated for.
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

    // The table has its own key. Encrypting it with the KEK would put DynamoDB's own calls (no tenant
    // context, grants) among the KEK's CloudTrail events, where the audit function rightly flags them.
    this.tableKey = new kms.Key(this, "TableKey", {
      alias: `alias/strongbox-${config.name}-table`,
      description: `Strongbox ${config.name}: encryption at rest of the ${tableName} table`,
      enableKeyRotation: true,
      removalPolicy,
    });
    // DynamoDB calls the key for table encryption with its own context, on behalf of callers that already
    // passed the table's IAM policy; letting it through here keeps KMS out of every role's table access.
    this.tableKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "AllowTableEncryptionThroughDynamoDB",
        principals: [new iam.AnyPrincipal()],
        actions: ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"],
        resources: ["*"],
        conditions: {
          StringEquals: {
            "kms:ViaService": dynamoService,
            "kms:CallerAccount": this.account,
            "kms:EncryptionContext:aws:dynamodb:tableName": tableName,
          },
        },
      }),
    );
    this.auditMacKey = new kms.Key(this, "AuditMacKey", {
      alias: `alias/strongbox-${config.name}-audit-mac`,
      description: `Strongbox ${config.name} audit chain MAC key`,
      keySpec: kms.KeySpec.HMAC_256,
      keyUsage: kms.KeyUsage.GENERATE_VERIFY_MAC,
      removalPolicy,
    });

    this.table = new dynamodb.Table(this, "Table", {
      tableName,
      partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "sk", type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.tableKey,
      deletionProtection: config.protectData,
      removalPolicy,
    });

    // The service accepts `sbx_<id>_<64 hex>` tokens; Secrets Manager can generate the 64 hex characters
    // (256 bits) and the service derives the id from them (shared/crypto/tokens.ts bootstrapToken).
    this.bootstrapSecret = new secretsmanager.Secret(this, "BootstrapAdminToken", {
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
  }
}
