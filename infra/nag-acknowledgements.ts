import { Stack, Token, Validations } from "aws-cdk-lib";
import type { IConstruct } from "constructs";
import type { StrongboxStage } from "./stage.ts";

export interface Acknowledgement {
  /** Construct paths inside the stage, e.g. "Api/HttpApi/DefaultRoute". */
  readonly paths: readonly string[];
  readonly id: string;
  readonly reason: string;
}

const FUNCTIONS = ["Api/ApiFunction", "Rotation/RotationFunction", "Audit/AuditFunction"] as const;

/**
 * Every cdk-nag finding Strongbox accepts, in one place, each with its reason. Anything not listed here
 * fails `npm run synth` and test/infra/nag.test.ts.
 */
export const ACKNOWLEDGEMENTS: readonly Acknowledgement[] = [
  {
    paths: FUNCTIONS.map((fn) => `${fn}/Function`),
    id: "AwsSolutions-L1",
    reason:
      "Node.js 22 is the runtime the bundles are built, tested and benchmarked for (infra/bundling.ts target " +
      "node22); moving to a newer runtime is a deliberate upgrade, not a drift.",
  },
  {
    paths: FUNCTIONS.map((fn) => `${fn}/Role/DefaultPolicy`),
    id: "AwsSolutions-IAM5[Resource::*]",
    reason:
      "Only X-Ray's xray:PutTraceSegments and xray:PutTelemetryRecords, and the audit sequencer's " +
      "dynamodb:ListStreams, which support no resource-level permissions; every data, key and secret " +
      "permission names its own resource.",
  },
  {
    paths: ["Api/HttpApi/DefaultRoute"],
    id: "AwsSolutions-APIG4",
    reason:
      "Every /v1 route authenticates a bearer token and checks role and tenant scope in the application " +
      "(functions/api/middleware/authenticate.ts, shared/domain/operations.ts), and every denial is audited; " +
      "/health is deliberately public. The IAM route set (/iam/{proxy+}) is a route of its own, with IAM " +
      "authorization, since a route takes one authorizer (docs/api.md#iam-callers).",
  },
  {
    paths: ["Data/BootstrapAdminToken"],
    id: "AwsSolutions-SMG4",
    reason:
      "The bootstrap admin token is rotated by an operator (README, Deploy: put a new 64-hex value; the next " +
      "cold start issues the token it derives); a rotation Lambda would mint admin tokens unattended.",
  },
  {
    paths: ["Audit/Trail/S3"],
    id: "AwsSolutions-S1",
    reason:
      "The bucket only receives CloudTrail's log files (file validation on, SSL only, no public access);" +
      " server access logging would need a second bucket holding only records about this one.",
  },
  {
    paths: ["Data/AuditAnchors"],
    id: "AwsSolutions-S1",
    reason:
      "The anchor bucket only ever receives the audit sequencer's conditional puts, under Object Lock with" +
      " deletes refused by its policy; CloudTrail data events, not a second bucket of access logs, are" +
      " where reads of it would be recorded.",
  },
];

function find(stage: StrongboxStage, path: string): IConstruct {
  const found = stage.node.tryFindChild(path.split("/")[0] ?? "");
  const construct = path
    .split("/")
    .slice(1)
    .reduce<IConstruct | undefined>((node, id) => node?.node.tryFindChild(id), found);
  if (construct === undefined) throw new Error(`cdk-nag acknowledgement names a missing construct: ${path}`);
  return construct;
}

/**
 * Findings whose id names the stage's own account, region and configured prefixes: the wildcards at the
 * end of a name prefix are the configured boundary itself (infra/config.ts), not a missing one.
 */
export function stageAcknowledgements(stage: StrongboxStage): Acknowledgement[] {
  const stack = Stack.of(stage.api);
  const region = Token.isUnresolved(stack.region) ? "<AWS::Region>" : stack.region;
  const account = Token.isUnresolved(stack.account) ? "<AWS::AccountId>" : stack.account;
  const { referencedSecretNamePrefix, verifierFunctionNamePrefix } = stage.config;
  const anchorBucket = `strongbox-${stage.config.name}-audit-anchors-${account}-${region}`;
  return [
    {
      paths: ["Api/ApiFunction/Role/DefaultPolicy", "Audit/AuditFunction/Role/DefaultPolicy"],
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${anchorBucket}/anchors/*]`,
      reason:
        "Audit chain anchors: one object per anchor, named by scope and sequence at run time, so the" +
        " grant names the anchor prefix; the sequencer may put (conditionally) and get there, the API only get.",
    },
    {
      paths: ["Api/ApiFunction/Role/DefaultPolicy"],
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:${region}:${account}:secret:${referencedSecretNamePrefix}*]`,
      reason:
        "CredentialRefs: GetSecretValue and DescribeSecret on the secrets under the stage's configured name " +
        "prefix only; Secrets Manager appends six random characters to every secret's ARN, so a prefix needs the wildcard.",
    },
    {
      paths: ["Api/ApiFunction/Role/DefaultPolicy", "Rotation/RotationFunction/Role/DefaultPolicy"],
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:lambda:${region}:${account}:function:${verifierFunctionNamePrefix}*]`,
      reason:
        "Rotation verification hooks: InvokeFunction on the functions named with the stage's configured prefix " +
        "only, which the tenants' operators deploy themselves.",
    },
  ];
}

export function acknowledgeFindings(
  stage: StrongboxStage,
  acknowledgements: readonly Acknowledgement[],
): void {
  for (const { paths, id, reason } of [...acknowledgements, ...stageAcknowledgements(stage)]) {
    for (const path of paths) {
      // Optional resources (the trail exists only where config.createTrail) are acknowledged where present.
      if (path.startsWith("Audit/Trail/") && stage.audit.trail === undefined) continue;
      Validations.of(find(stage, path)).acknowledge({ id, reason });
    }
  }
}
