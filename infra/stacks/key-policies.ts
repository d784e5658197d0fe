import { DefaultStackSynthesizer, type Stack } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type { FunctionName } from "../bundling.ts";
import type { EnvironmentConfig } from "../config.ts";
import { functionRoleName } from "../constructs/strongbox-function.ts";

/**
 * What a key administrator may do: change, enable, disable, tag and delete a key, never use it. No
 * Encrypt, Decrypt, ReEncrypt, GenerateDataKey, GenerateMac or VerifyMac matches any of these; nor does
 * CreateGrant (`kms:Create*` would include it), since a grant to oneself is use by another name.
 */
export const KEY_ADMINISTRATION_ACTIONS = [
  "kms:CreateAlias",
  "kms:Describe*",
  "kms:Enable*",
  "kms:List*",
  "kms:Put*",
  "kms:Update*",
  "kms:Revoke*",
  "kms:Disable*",
  "kms:Get*",
  "kms:Delete*",
  "kms:TagResource",
  "kms:UntagResource",
  "kms:ScheduleKeyDeletion",
  "kms:CancelKeyDeletion",
] as const;

const arnOfRole = (stack: Stack, name: string) => `arn:${stack.partition}:iam::${stack.account}:role/${name}`;

export const functionRoleArn = (stack: Stack, config: EnvironmentConfig, fn: FunctionName): string =>
  arnOfRole(stack, functionRoleName(config.name, fn));

/**
 * The role CloudFormation acts as when it deploys this stack (the CDK bootstrap's cfn-exec role). It
 * creates, updates and deletes the keys, and KMS refuses a key policy that would lock its caller out of
 * a later PutKeyPolicy, so it must be a key administrator too.
 */
export function cloudFormationRoleArn(stack: Stack): string {
  const synthesizer = stack.synthesizer;
  if (!(synthesizer instanceof DefaultStackSynthesizer)) {
    throw new Error(
      `${stack.stackName}: the key policies name CloudFormation's execution role, which only the default synthesizer knows`,
    );
  }
  // The synthesizer leaves CloudFormation's pseudo-parameters as placeholders; this stack knows them.
  const pseudo: Record<string, string> = {
    "AWS::Partition": stack.partition,
    "AWS::AccountId": stack.account,
    "AWS::Region": stack.region,
  };
  return synthesizer.cloudFormationExecutionRoleArn.replace(
    /\$\{(AWS::\w+)\}/g,
    (placeholder, name: string) => pseudo[name] ?? placeholder,
  );
}

/** The stage's key administrator role and CloudFormation's role, by ARN; both exist before any deploy. */
export const keyAdministratorArns = (stack: Stack, config: EnvironmentConfig): readonly string[] => [
  arnOfRole(stack, config.keyAdministratorRoleName),
  cloudFormationRoleArn(stack),
];

/** The key administrators: administration, no use. */
export function keyAdministration(stack: Stack, config: EnvironmentConfig): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: "KeyAdministration",
    principals: keyAdministratorArns(stack, config).map((arn) => new iam.ArnPrincipal(arn)),
    actions: [...KEY_ADMINISTRATION_ACTIONS],
    resources: ["*"],
  });
}

/** Every cryptographic use of a key, and the grant that would hand one out. */
export const KEY_USE_ACTIONS = [
  "kms:Decrypt",
  "kms:ReEncrypt*",
  "kms:GenerateMac",
  "kms:VerifyMac",
  "kms:Sign",
  "kms:Verify",
  "kms:DeriveSharedSecret",
  "kms:GenerateDataKeyPair*",
  "kms:GenerateDataKeyWithoutPlaintext",
] as const;
/** The two uses that only put data under a key; the bootstrap key lets administrators write through Secrets Manager. */
export const KEY_WRITE_ACTIONS = ["kms:Encrypt", "kms:GenerateDataKey"] as const;

/**
 * An explicit deny of use to the administrators, so no later allow (a grant, a statement someone adds)
 * gives it to them. A grant for an AWS resource (DynamoDB's for the table, made as CloudFormation
 * creates it) stays possible; a grant to a principal never. PutKeyPolicy cannot be taken from an
 * administrator without locking the key; the audit function records every call on the KEK and the MAC
 * key as an anomaly, so a policy change shows in the trail and raises KmsAnomalies.
 */
function administratorsUseNothing(
  stack: Stack,
  config: EnvironmentConfig,
  writeVia: string | undefined,
): iam.PolicyStatement[] {
  const principals = keyAdministratorArns(stack, config).map((arn) => new iam.ArnPrincipal(arn));
  const deny = (sid: string, actions: readonly string[], conditions?: Record<string, unknown>) =>
    new iam.PolicyStatement({
      sid,
      effect: iam.Effect.DENY,
      principals,
      actions: [...actions],
      resources: ["*"],
      ...(conditions === undefined ? {} : { conditions }),
    });
  return [
    deny("AdministratorsUseNothing", KEY_USE_ACTIONS),
    deny(
      "AdministratorsWriteNothing",
      KEY_WRITE_ACTIONS,
      writeVia === undefined ? undefined : { StringNotEquals: { "kms:ViaService": writeVia } },
    ),
    deny("AdministratorsGrantNothing", ["kms:CreateGrant"], {
      Bool: { "kms:GrantIsForAWSResource": "false" },
    }),
  ];
}

/**
 * Use of a key by some of the stage's function roles. The roles live in stacks that are deployed after
 * this key, and KMS refuses a policy whose principal does not exist yet. The account root as principal
 * with `aws:PrincipalArn` pinned to the roles delegates to IAM for those roles only: each still needs
 * its own identity policy, and no other principal of the account, whatever its IAM policies, matches.
 */
export function functionRoleUse(
  stack: Stack,
  config: EnvironmentConfig,
  options: {
    readonly sid: string;
    readonly functions: readonly FunctionName[];
    readonly actions: readonly string[];
    readonly conditions?: Record<string, Record<string, unknown>>;
  },
): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: options.sid,
    principals: [new iam.AccountRootPrincipal()],
    actions: [...options.actions],
    resources: ["*"],
    conditions: {
      ...options.conditions,
      ArnEquals: { "aws:PrincipalArn": options.functions.map((fn) => functionRoleArn(stack, config, fn)) },
    },
  });
}

/**
 * A whole key policy: the administration statement and the given ones. Passing it as the key's `policy`
 * replaces CDK's default (the account root with kms:*), which would let any principal whose IAM policy
 * allows kms:Decrypt on `*` use the key.
 */
export function keyPolicy(
  stack: Stack,
  config: EnvironmentConfig,
  statements: readonly iam.PolicyStatement[],
  /** The one service through which administrators may write under the key (the bootstrap secret's). */
  options: { readonly administratorsWriteVia?: string } = {},
): iam.PolicyDocument {
  return new iam.PolicyDocument({
    statements: [
      keyAdministration(stack, config),
      ...administratorsUseNothing(stack, config, options.administratorsWriteVia),
      ...statements,
    ],
  });
}
