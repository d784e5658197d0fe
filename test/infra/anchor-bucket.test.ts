import { beforeAll, describe, expect, it } from "vitest";
import { ENVIRONMENT_NAMES, environmentConfig } from "../../infra/config.ts";
import { ANCHOR_PREFIX as GRANTED_PREFIX } from "../../infra/stacks/grants.ts";
import { ANCHOR_PREFIX } from "../../shared/storage/s3-anchor-log.ts";
import {
  actionsOf,
  roleStatements,
  type Statement,
  synthesizeAll,
  type Templates,
} from "../../testing/infra.ts";

// The audit anchor bucket as the templates deploy it: Object Lock in compliance mode, versioned,
// encrypted, private, SSL only, and a policy no service role's IAM can talk past.

let templates: Templates;
beforeAll(() => {
  ({ templates } = synthesizeAll());
}, 120_000);

const ACCOUNT = "111111111111";
const REGION = "us-east-1";
const bucketName = (env: string) => `strongbox-${env}-audit-anchors-${ACCOUNT}-${REGION}`;
/** What no service role may do to an anchor, and what the bucket policy refuses everyone. */
const DESTRUCTIVE = [
  "s3:DeleteObject",
  "s3:DeleteObjectVersion",
  "s3:PutObjectRetention",
  "s3:PutObjectLegalHold",
  "s3:BypassGovernanceRetention",
];

function bucket(env: (typeof ENVIRONMENT_NAMES)[number]) {
  const buckets = Object.values(templates[env].data.findResources("AWS::S3::Bucket")) as {
    Properties: Record<string, any>;
    DeletionPolicy?: string;
  }[];
  expect(buckets).toHaveLength(1);
  return buckets[0] as { Properties: Record<string, any>; DeletionPolicy?: string };
}

function bucketPolicy(env: (typeof ENVIRONMENT_NAMES)[number]): Statement[] {
  const policies = Object.values(templates[env].data.findResources("AWS::S3::BucketPolicy")) as {
    Properties: { PolicyDocument: { Statement: Statement[] } };
  }[];
  expect(policies).toHaveLength(1);
  return policies[0]?.Properties.PolicyDocument.Statement ?? [];
}

const s3Statements = (statements: Statement[]) =>
  statements.filter((statement) => actionsOf(statement).some((action) => action.startsWith("s3:")));

describe.each(ENVIRONMENT_NAMES)("the %s anchor bucket", (env) => {
  it("locks every anchor in compliance mode for the stage's retention, versioned, encrypted, private and kept", () => {
    const { Properties: p, DeletionPolicy } = bucket(env);
    expect(p.BucketName).toBe(bucketName(env));
    expect(p.ObjectLockEnabled).toBe(true);
    expect(p.ObjectLockConfiguration).toEqual({
      ObjectLockEnabled: "Enabled",
      Rule: {
        DefaultRetention: { Mode: "COMPLIANCE", Days: environmentConfig(env).auditAnchorRetentionDays },
      },
    });
    expect(p.VersioningConfiguration).toEqual({ Status: "Enabled" });
    expect(p.BucketEncryption.ServerSideEncryptionConfiguration).toEqual([
      { ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } },
    ]);
    expect(p.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(DeletionPolicy).toBe("Retain");
  });

  it("has no lifecycle rule that could put delete markers over current anchors", () => {
    // An Expiration rule hides every anchor behind a delete marker, which Object Lock does not stop.
    const rules = (bucket(env).Properties.LifecycleConfiguration?.Rules ?? []) as Record<string, unknown>[];
    const current = ["ExpirationInDays", "ExpirationDate", "ExpiredObjectDeleteMarker", "Transitions"];
    expect(rules.flatMap((rule) => current.filter((field) => field in rule))).toEqual([]);
  });

  it("refuses its lifecycle, policy, lock and versioning to everyone but CloudFormation's role", () => {
    expect(bucketPolicy(env)).toContainEqual(
      expect.objectContaining({
        Effect: "Deny",
        Principal: { AWS: "*" },
        Action: [
          "s3:PutLifecycleConfiguration",
          "s3:PutBucketPolicy",
          "s3:DeleteBucketPolicy",
          "s3:PutBucketObjectLockConfiguration",
          "s3:PutBucketVersioning",
        ],
        Resource: { "Fn::GetAtt": [expect.any(String), "Arn"] },
        Condition: {
          ArnNotEquals: {
            "aws:PrincipalArn": {
              "Fn::Join": [
                "",
                [
                  "arn:",
                  { Ref: "AWS::Partition" },
                  `:iam::${ACCOUNT}:role/cdk-hnb659fds-cfn-exec-role-${ACCOUNT}-${REGION}`,
                ],
              ],
            },
          },
        },
      }),
    );
  });

  it("refuses deletes and retention changes to everyone, unconditional puts, puts by anyone but the audit role, and plain HTTP", () => {
    const deny = bucketPolicy(env).filter((s) => s.Effect === "Deny");
    const objects = { "Fn::Join": ["", [{ "Fn::GetAtt": [expect.any(String), "Arn"] }, "/*"]] };
    expect(deny).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Action: DESTRUCTIVE, Principal: { AWS: "*" }, Resource: objects }),
        expect.objectContaining({
          Action: "s3:PutObject",
          Principal: { AWS: "*" },
          Condition: { Null: { "s3:if-none-match": "true" } },
        }),
        expect.objectContaining({
          Action: "s3:PutObject",
          Principal: { AWS: "*" },
          Condition: {
            ArnNotEquals: {
              "aws:PrincipalArn": {
                "Fn::Join": [
                  "",
                  ["arn:", { Ref: "AWS::Partition" }, `:iam::${ACCOUNT}:role/strongbox-${env}-audit`],
                ],
              },
            },
          },
        }),
        expect.objectContaining({ Action: "s3:*", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
      ]),
    );
    expect(bucketPolicy(env).filter((s) => s.Effect === "Allow")).toEqual([]);
  });

  it("grants the sequencer put and get under the anchor prefix, the API the versions' list and get, rotation nothing, and no role a destructive action", () => {
    const anchors = `:s3:::${bucketName(env)}/${ANCHOR_PREFIX}*`;
    const resource = (suffix: string) => ({ "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, suffix]] });
    const audit = s3Statements(roleStatements(templates[env].audit));
    expect(audit).toEqual([
      expect.objectContaining({
        Effect: "Allow",
        Action: ["s3:PutObject", "s3:GetObject"],
        Resource: resource(anchors),
      }),
    ]);
    const api = s3Statements(roleStatements(templates[env].api));
    expect(api).toEqual([
      expect.objectContaining({
        Effect: "Allow",
        Action: "s3:ListBucketVersions",
        Resource: resource(`:s3:::${bucketName(env)}`),
        Condition: { StringLike: { "s3:prefix": [`${ANCHOR_PREFIX}*`] } },
      }),
      expect.objectContaining({
        Effect: "Allow",
        Action: "s3:GetObjectVersion",
        Resource: resource(anchors),
      }),
    ]);
    expect(s3Statements(roleStatements(templates[env].rotation))).toEqual([]);
    const granted = [...audit, ...api].flatMap(actionsOf);
    expect(granted.filter((action) => DESTRUCTIVE.includes(action) || action.includes("*"))).toEqual([]);
  });

  it("names the bucket to the sequencer and the API, and the sequencer anchors after every batch", () => {
    const variables = (stack: "api" | "audit" | "rotation") =>
      Object.values(templates[env][stack].findResources("AWS::Lambda::Function"))
        .map(
          (fn) =>
            (fn as { Properties: { Environment?: { Variables?: Record<string, unknown> } } }).Properties,
        )
        .find((p) => p.Environment?.Variables?.STRONGBOX_ENVIRONMENT !== undefined)?.Environment?.Variables ??
      {};
    expect(variables("audit")).toMatchObject({
      AUDIT_ANCHOR_BUCKET: bucketName(env),
      AUDIT_ANCHOR_INTERVAL_SECONDS: "0",
    });
    expect(variables("api")).toMatchObject({ AUDIT_ANCHOR_BUCKET: bucketName(env) });
    expect(variables("rotation").AUDIT_ANCHOR_BUCKET).toBeUndefined();
  });
});

it("infra grants the prefix the anchor log writes under", () => {
  expect(GRANTED_PREFIX).toBe(ANCHOR_PREFIX);
});
