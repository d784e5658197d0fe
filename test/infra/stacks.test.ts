import { Match, type Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { ENVIRONMENT_NAMES, environmentConfig } from "../../infra/config.ts";
import { SYSTEM_TENANT_CONTEXT, TENANT_CONTEXT_CONDITION } from "../../infra/stacks/data-stack.ts";
import { BREAK_GLASS_ACTIVATED, EVENT_SOURCES, REWRAP_REQUESTED } from "../../infra/stacks/event-contract.ts";
import { PARTITIONS } from "../../infra/stacks/grants.ts";
import { KEY_ADMINISTRATION_ACTIONS } from "../../infra/stacks/key-policies.ts";
import { METRIC_NAMESPACE } from "../../infra/stacks/monitoring-stack.ts";
import { BREAK_GLASS_ACTIVATED as BREAK_GLASS_EVENT } from "../../shared/domain/break-glass.ts";
import { SYSTEM_SCOPE } from "../../shared/domain/types.ts";
import { METRICS_NAMESPACE } from "../../shared/observability/emf-metrics.ts";
import { ROTATION_EVENT_SOURCE } from "../../shared/observability/rotation-events.ts";
import {
  auditPartition,
  BREAK_GLASS_DIRECTORY_PARTITION,
  bindingKey,
  breakGlassKey,
  DIRECTORY_PARTITION,
  KEK_REGISTRY_KEY,
  sealKey,
  TOKEN_DIRECTORY_PARTITION,
  tenantPartition,
  tokenKey,
  WRAP_DIRECTORY_PARTITION,
  wrapKey,
} from "../../shared/storage/keys.ts";
import {
  actionsOf,
  roleStatements,
  type Statement,
  synthesizeAll,
  type Templates,
} from "../../testing/infra.ts";

let templates: Templates;
beforeAll(() => {
  ({ templates } = synthesizeAll());
}, 120_000);

const kmsCrypto = /^kms:(Decrypt|Encrypt|GenerateDataKey|ReEncrypt)/;
/** Every KMS action that uses a key's material (the KMS API reference's cryptographic operations). */
const KMS_USE_ACTIONS = [
  "kms:Encrypt",
  "kms:Decrypt",
  "kms:ReEncryptFrom",
  "kms:ReEncryptTo",
  "kms:GenerateDataKey",
  "kms:GenerateDataKeyWithoutPlaintext",
  "kms:GenerateDataKeyPair",
  "kms:GenerateDataKeyPairWithoutPlaintext",
  "kms:GenerateMac",
  "kms:VerifyMac",
  "kms:Sign",
  "kms:Verify",
  "kms:DeriveSharedSecret",
];

/** IAM's wildcard match (`*` any run, `?` one character), case-sensitive as for condition values. */
function matches(pattern: string, value: string): boolean {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`).test(value);
}

type KeyStatement = Statement & { readonly Sid?: string; readonly Principal?: unknown };

/**
 * A policy with the partition filled in and the joins it makes joined, so ARNs read as strings. (The
 * test app, unlike `cdk synth`, does not read cdk.json's partition-literals flag.)
 */
function resolved<T>(value: T): T {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (typeof node !== "object" || node === null) return node;
    const object = node as Record<string, unknown>;
    if (object.Ref === "AWS::Partition") return "aws";
    const join = object["Fn::Join"] as [string, unknown[]] | undefined;
    if (join !== undefined) {
      const parts = join[1].map(walk);
      return parts.every((part) => typeof part === "string")
        ? parts.join(join[0])
        : { "Fn::Join": [join[0], parts] };
    }
    return Object.fromEntries(Object.entries(object).map(([key, child]) => [key, walk(child)]));
  };
  return walk(value) as T;
}

/** Each KMS key's policy statements, by logical id. */
function keysOf(template: Template): Record<string, KeyStatement[]> {
  return Object.fromEntries(
    Object.entries(template.findResources("AWS::KMS::Key")).map(([id, key]) => [
      id,
      resolved(
        (key as { Properties: { KeyPolicy: { Statement: KeyStatement[] } } }).Properties.KeyPolicy.Statement,
      ),
    ]),
  );
}

function principalsOf(statement: KeyStatement): string[] {
  const principal = statement.Principal as { AWS?: unknown } | string | undefined;
  const aws = typeof principal === "object" ? principal.AWS : principal;
  return (Array.isArray(aws) ? aws : aws === undefined ? [] : [aws]).map((p) =>
    typeof p === "string" ? p : JSON.stringify(p),
  );
}

/** What each role the key policy pins by `aws:PrincipalArn` may do with the key, sorted. */
function useByRole(statements: readonly KeyStatement[]): Record<string, string[]> {
  const byRole: Record<string, Set<string>> = {};
  for (const s of statements.filter((s) => s.Effect === "Allow")) {
    const roles = s.Condition?.ArnEquals?.["aws:PrincipalArn"] as string[] | undefined;
    for (const role of roles ?? []) {
      byRole[role] ??= new Set();
      for (const action of actionsOf(s)) byRole[role].add(action);
    }
  }
  return Object.fromEntries(Object.entries(byRole).map(([role, actions]) => [role, [...actions].sort()]));
}
const onlyResource = (template: Template, type: string) => {
  const found = Object.values(template.findResources(type));
  expect(found).toHaveLength(1);
  return found[0] as { Properties: Record<string, any>; DeletionPolicy?: string };
};

describe.each(ENVIRONMENT_NAMES)("the %s stage", (env) => {
  const config = environmentConfig(env);
  const t = () => templates[env];

  describe("Data", () => {
    it("keeps the table on demand, with point-in-time recovery, encrypted with the stage's own table key", () => {
      const table = onlyResource(t().data, "AWS::DynamoDB::Table");
      expect(table.Properties).toMatchObject({
        TableName: `strongbox-${env}`,
        BillingMode: "PAY_PER_REQUEST",
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true, SSEType: "KMS" },
      });
      expect(JSON.stringify(table.Properties.SSESpecification.KMSMasterKeyId)).toContain("TableKey");
    });

    it("lets DynamoDB use the table key for this table only, and keeps DynamoDB away from the KEK", () => {
      const keys = t().data.findResources("AWS::KMS::Key");
      const policy = (name: string) =>
        Object.entries(keys).find(([id]) => id.startsWith(name))?.[1] as { Properties: Record<string, any> };
      const tableKey = policy("TableKey").Properties.KeyPolicy.Statement as Statement[];
      const viaDynamo = tableKey.find((s) => JSON.stringify(s.Condition ?? {}).includes("kms:ViaService"));
      expect(viaDynamo?.Condition?.StringEquals).toMatchObject({
        "kms:EncryptionContext:aws:dynamodb:tableName": `strongbox-${env}`,
      });
      expect(JSON.stringify(policy("Kek").Properties.KeyPolicy)).not.toContain("dynamodb");
      expect(policy("TableKey").Properties.EnableKeyRotation).toBe(true);
    });

    it("protects the table in prod only", () => {
      const table = onlyResource(t().data, "AWS::DynamoDB::Table");
      if (env === "prod") {
        expect(table.Properties.DeletionProtectionEnabled).toBe(true);
        expect(table.DeletionPolicy).toBe("Retain");
      } else {
        expect(table.Properties.DeletionProtectionEnabled).toBe(false);
        expect(table.DeletionPolicy).toBe("Delete");
      }
    });

    it("has its own rotating KEK under alias/strongbox-<env> whose policy refuses calls without a tenant", () => {
      t().data.hasResourceProperties("AWS::KMS::Alias", { AliasName: `alias/strongbox-${env}` });
      const keys = t().data.findResources("AWS::KMS::Key", {
        Properties: { Description: Match.stringLikeRegexp("KEK") },
      });
      const [kek] = Object.values(keys) as { Properties: Record<string, any>; DeletionPolicy?: string }[];
      expect(kek?.Properties.EnableKeyRotation).toBe(true);
      expect(kek?.DeletionPolicy).toBe(env === "prod" ? "Retain" : "Delete");
      const statements = kek?.Properties.KeyPolicy.Statement as KeyStatement[];
      const deny = statements.find((s) => s.Sid === "RequireTenantEncryptionContext");
      expect(actionsOf(deny as Statement)).toEqual(
        expect.arrayContaining(["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]),
      );
      expect(deny?.Condition).toEqual({ Null: { [TENANT_CONTEXT_CONDITION]: "true" } });
    });

    it("has an HMAC key for the audit chain", () => {
      t().data.hasResourceProperties("AWS::KMS::Key", {
        KeySpec: "HMAC_256",
        KeyUsage: "GENERATE_VERIFY_MAC",
      });
    });

    it("generates the bootstrap token's secret half in Secrets Manager as 64 hex characters", () => {
      t().data.hasResourceProperties("AWS::SecretsManager::Secret", {
        Name: `strongbox/${env}/bootstrap-admin-token`,
        GenerateSecretString: {
          PasswordLength: 64,
          ExcludeUppercase: true,
          ExcludePunctuation: true,
          IncludeSpace: false,
          ExcludeCharacters: "ghijklmnopqrstuvwxyz",
        },
      });
    });
  });

  describe("Api", () => {
    it("runs the API through the house construct: ESM bundle, Node 22, arm64, tracing, own log group", () => {
      const fn = onlyResource(t().api, "AWS::Lambda::Function");
      expect(fn.Properties).toMatchObject({
        Runtime: "nodejs22.x",
        Architectures: ["arm64"],
        Handler: "index.handler",
        TracingConfig: { Mode: "Active" },
        LoggingConfig: { LogFormat: "JSON", LogGroup: { Ref: expect.stringMatching(/^ApiFunctionLogs/) } },
      });
      expect(fn.Properties.Environment.Variables).toMatchObject({
        BOOTSTRAP_TOKEN_SECRET_ARN: { "Fn::ImportValue": expect.stringMatching(/BootstrapAdminToken/) },
        KMS_KEY_ID: { "Fn::ImportValue": expect.stringMatching(/Kek/) },
      });
      expect(fn.Properties.Environment.Variables.NODE_OPTIONS).toBeUndefined();
      t().api.hasResourceProperties("AWS::Logs::LogGroup", { RetentionInDays: config.logRetentionDays });
    });

    it("throttles and access-logs the HTTP API, without headers, bodies or paths in the log", () => {
      const stage = onlyResource(t().api, "AWS::ApiGatewayV2::Stage");
      expect(stage.Properties.DefaultRouteSettings).toEqual({
        ThrottlingRateLimit: config.api.rateLimit,
        ThrottlingBurstLimit: config.api.burstLimit,
      });
      expect(stage.Properties.AccessLogSettings.DestinationArn).toBeDefined();
      expect(stage.Properties.AccessLogSettings.Format).not.toMatch(/header|authorization|body/i);
      // Paths name tenants and secrets; the function's own line for the requestId names the route.
      expect(stage.Properties.AccessLogSettings.Format).not.toMatch(
        /\$context\.(path|resourcePath|http\.path)/,
      );
      expect(stage.Properties.AccessLogSettings.Format).toContain("$context.requestId");
    });

    it("lets the API role use the KEK only with the tenant in the encryption context, and never re-encrypt", () => {
      const statements = roleStatements(t().api);
      const crypto = statements.filter(
        (s) => JSON.stringify(s.Resource).includes("Kek") && actionsOf(s).some((a) => kmsCrypto.test(a)),
      );
      expect(crypto.flatMap(actionsOf).sort()).toEqual(["kms:Decrypt", "kms:GenerateDataKey"]);
      for (const s of crypto) expect(s.Condition).toEqual({ Null: { [TENANT_CONTEXT_CONDITION]: "false" } });
      expect(statements.flatMap(actionsOf).filter((a) => a.includes("*"))).toEqual([]);
    });

    it("scopes the API role to its own table, keys and secret", () => {
      for (const s of roleStatements(t().api)) {
        const resource = JSON.stringify(s.Resource);
        if (actionsOf(s).some((a) => a.startsWith("dynamodb:")))
          expect(resource).toMatch(/strongbox-\w+-data:.*Table/);
        // The bootstrap secret, or the secrets CredentialRefs may name (under the configured prefix).
        if (actionsOf(s).some((a) => a.startsWith("secretsmanager:"))) {
          expect(
            resource.includes("BootstrapAdminToken") ||
              resource.includes(`:secret:${config.referencedSecretNamePrefix}*`),
          ).toBe(true);
        }
        if (actionsOf(s).some((a) => a.startsWith("kms:")))
          expect(resource).toMatch(/Kek|AuditMacKey|BootstrapSecretKey/);
        if (!actionsOf(s).some((a) => a.startsWith("xray:"))) expect(s.Resource).not.toBe("*");
      }
      expect(JSON.stringify(roleStatements(t().api))).toContain(`strongbox-${env}-data`);
    });

    it("puts IAM authorization on the /iam route set only; the bearer routes authenticate in the function", () => {
      const routes = Object.values(t().api.findResources("AWS::ApiGatewayV2::Route")).map(
        (route) => (route as { Properties: Record<string, unknown> }).Properties,
      );
      expect(routes.map((r) => [r.RouteKey, r.AuthorizationType ?? "NONE"]).sort()).toEqual([
        ["$default", "NONE"],
        ["ANY /iam/{proxy+}", "AWS_IAM"],
      ]);
      // Both reach the one function, through one integration, which API Gateway may invoke for each.
      expect(new Set(routes.map((r) => JSON.stringify(r.Target))).size).toBe(1);
      const invokedFrom = Object.values(t().api.findResources("AWS::Lambda::Permission")).map((p) =>
        JSON.stringify((p as { Properties: { SourceArn: unknown } }).Properties.SourceArn),
      );
      expect(invokedFrom.filter((arn) => arn.endsWith('/*/*"]]}'))).toHaveLength(1);
      expect(invokedFrom.filter((arn) => arn.endsWith('/*/*/iam/{proxy+}"]]}'))).toHaveLength(1);
    });
  });

  describe("Rotation", () => {
    it("runs on the stage's schedule with a dead-letter queue for the function and the rule target", () => {
      const rule = Object.values(
        t().rotation.findResources("AWS::Events::Rule", {
          Properties: { ScheduleExpression: config.rotationSchedule },
        }),
      )[0] as { Properties: Record<string, any> } | undefined;
      expect(rule?.Properties.Targets[0].DeadLetterConfig.Arn).toBeDefined();
      const fn = onlyResource(t().rotation, "AWS::Lambda::Function");
      expect(fn.Properties.DeadLetterConfig.TargetArn).toBeDefined();
    });

    it("is the only role that may re-encrypt, and only with the tenant in the encryption context", () => {
      const reEncrypt = (template: Template) =>
        roleStatements(template).filter(
          (s) => s.Effect !== "Deny" && actionsOf(s).some((a) => a.startsWith("kms:ReEncrypt")),
        );
      expect(reEncrypt(t().rotation)).toHaveLength(1);
      // Its own deny of `_system` keys, beside the KEK policy's.
      expect(
        roleStatements(t().rotation)
          .filter((s) => s.Effect === "Deny")
          .map((s) => [actionsOf(s).sort(), s.Condition]),
      ).toEqual([
        [
          ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
          { StringEquals: { [TENANT_CONTEXT_CONDITION]: SYSTEM_TENANT_CONTEXT } },
        ],
      ]);
      expect(reEncrypt(t().rotation)[0]?.Condition).toEqual({
        Null: { [TENANT_CONTEXT_CONDITION]: "false" },
      });
      for (const other of [t().api, t().audit, t().monitoring, t().data])
        expect(reEncrypt(other)).toEqual([]);
    });
  });

  describe("Audit", () => {
    it("routes CloudTrail's KMS calls on this stage's keys through SQS to the audit function", () => {
      const rules = Object.values(t().audit.findResources("AWS::Events::Rule")).map(
        (r) => (r as { Properties: Record<string, any> }).Properties,
      );
      expect(rules).toHaveLength(2);
      for (const rule of rules) {
        expect(rule.EventPattern).toMatchObject({
          source: ["aws.kms"],
          "detail-type": ["AWS API Call via CloudTrail"],
        });
        expect(JSON.stringify(rule.EventPattern.detail.resources.ARN)).toContain(`strongbox-${env}-data`);
        expect(JSON.stringify(rule.Targets[0].Arn)).toContain("Queue");
        expect(rule.Targets[0].DeadLetterConfig.Arn).toBeDefined();
      }
      const watched = rules.map((r) => JSON.stringify(r.EventPattern.detail.resources.ARN)).join();
      expect(watched).toMatch(/Kek/);
      expect(watched).toMatch(/AuditMacKey/);
    });

    it("watches every call on the KEK, but not the audit function's own MAC calls, which would loop", () => {
      const rules = Object.values(t().audit.findResources("AWS::Events::Rule")).map(
        (r) => (r as { Properties: Record<string, any> }).Properties.EventPattern.detail,
      );
      const kek = rules.find((d) => JSON.stringify(d.resources).includes("Kek"));
      const mac = rules.find((d) => JSON.stringify(d.resources).includes("AuditMacKey"));
      expect(kek?.userIdentity).toBeUndefined();
      const excluded = JSON.stringify(mac?.userIdentity.arn[0]["anything-but"].prefix);
      expect(excluded).toContain("assumed-role/");
      expect(excluded).toContain("AuditFunctionRole");
    });

    it("feeds the audit function from the queue, reporting batch item failures, with a DLQ", () => {
      t().audit.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
        FunctionResponseTypes: ["ReportBatchItemFailures"],
      });
      t().audit.hasResourceProperties("AWS::SQS::Queue", {
        RedrivePolicy: Match.objectLike({ maxReceiveCount: 5 }),
      });
    });

    it("gives the audit function its contract's environment", () => {
      const fn = onlyResource(t().audit, "AWS::Lambda::Function");
      expect(Object.keys(fn.Properties.Environment.Variables)).toEqual(
        expect.arrayContaining([
          "TABLE_NAME",
          "WATCHED_KMS_KEY_ARNS",
          "SERVICE_ROLE_ARNS",
          "AUDIT_MAC_KEY_ID",
        ]),
      );
      expect(JSON.stringify(fn.Properties.Environment.Variables.SERVICE_ROLE_ARNS)).toMatch(
        /ApiFunctionRole.*RotationFunctionRole/,
      );
    });

    it("gives the audit role no decrypt permission but the table key's, for reading the stream", () => {
      const statements = roleStatements(t().audit);
      const decrypting = statements.filter((s) => actionsOf(s).some((a) => kmsCrypto.test(a)));
      // Streams of a table under a customer managed key are read with its key, which only DynamoDB
      // may use, on this table's behalf (the key policy, checked below).
      expect(decrypting.map((s) => [actionsOf(s), JSON.stringify(s.Resource)])).toEqual([
        [["kms:Decrypt", "kms:DescribeKey"], expect.stringMatching(/TableKey/)],
      ]);
      const actions = statements.flatMap(actionsOf);
      expect(actions).toEqual(expect.arrayContaining(["kms:GenerateMac", "sqs:ReceiveMessage"]));
    });

    it("feeds the audit function (the sequencer) the table's stream of waiting audit records only", () => {
      t().data.hasResourceProperties("AWS::DynamoDB::Table", {
        StreamSpecification: { StreamViewType: "NEW_IMAGE" },
      });
      const mappings = Object.values(t().audit.findResources("AWS::Lambda::EventSourceMapping")).map(
        (m) => (m as { Properties: Record<string, any> }).Properties,
      );
      const stream = mappings.find((m) => m.StartingPosition === "TRIM_HORIZON");
      expect(stream).toMatchObject({
        BatchSize: 1000,
        MaximumBatchingWindowInSeconds: 1,
        BisectBatchOnFunctionError: true,
        FunctionResponseTypes: ["ReportBatchItemFailures"],
        FilterCriteria: {
          Filters: [
            {
              Pattern: JSON.stringify({
                eventName: ["INSERT"],
                dynamodb: { Keys: { sk: { S: [{ prefix: "NEW#" }] } } },
              }),
            },
          ],
        },
      });
      expect(stream?.DestinationConfig?.OnFailure?.Destination).toBeDefined();
    });

    it("lets the audit role make every table call its store makes, batched reads included", () => {
      const actions = roleStatements(t().audit).flatMap(actionsOf);
      for (const action of ["GetItem", "BatchGetItem", "PutItem", "Query"]) {
        expect(actions).toContain(`dynamodb:${action}`);
      }
    });

    it(`creates its own CloudTrail trail only where configured (${config.createTrail})`, () => {
      t().audit.resourceCountIs("AWS::CloudTrail::Trail", config.createTrail ? 1 : 0);
    });
  });

  describe("Monitoring", () => {
    const alarms = () =>
      Object.values(t().monitoring.findResources("AWS::CloudWatch::Alarm")).map(
        (a) => (a as { Properties: Record<string, any> }).Properties,
      );
    const byMetric = (name: string) => alarms().filter((a) => a.MetricName === name);

    it("alarms on the service's metrics with the stage's thresholds", () => {
      expect(byMetric("DecryptFailures")[0]).toMatchObject({
        Namespace: "Strongbox",
        ComparisonOperator: "GreaterThanThreshold",
        Threshold: config.alarms.decryptFailureThreshold,
        Dimensions: [
          { Name: "environment", Value: config.name },
          { Name: "service", Value: "strongbox" },
        ],
      });
      expect(byMetric("KekConfigured")[0]).toMatchObject({
        ComparisonOperator: "LessThanThreshold",
        Threshold: 1,
      });
      for (const name of [
        "AuditWriteFailures",
        "KmsAnomalies",
        "IntegrityFailures",
        "RotationFailures",
        "GlobalSealActive",
        "SealRefusals",
        "BreakGlassActive",
      ]) {
        expect(byMetric(name)[0]).toMatchObject({ ComparisonOperator: "GreaterThanThreshold", Threshold: 0 });
      }
    });

    it("alarms on errors and throttles of every function and on API 5xx, all to one topic", () => {
      expect(byMetric("Errors")).toHaveLength(3);
      expect(byMetric("Throttles")).toHaveLength(3);
      expect(byMetric("5xx")).toHaveLength(1);
      t().monitoring.resourceCountIs("AWS::SNS::Topic", 1);
      const topic = Object.keys(t().monitoring.findResources("AWS::SNS::Topic"))[0];
      for (const alarm of alarms()) expect(alarm.AlarmActions).toEqual([{ Ref: topic }]);
      t().monitoring.resourceCountIs("AWS::CloudWatch::Dashboard", 1);
    });

    it("alarms on a message in either dead-letter queue", () => {
      const deadLetters = byMetric("ApproximateNumberOfMessagesVisible");
      expect(deadLetters.map((a) => a.AlarmName).sort()).toEqual([
        `strongbox-${config.name}-audit-DeadLetters`,
        `strongbox-${config.name}-rotation-DeadLetters`,
      ]);
      for (const alarm of deadLetters) expect(alarm).toMatchObject({ Threshold: 0, Namespace: "AWS/SQS" });
    });

    it("watches the namespace the functions publish to", () => {
      expect(METRIC_NAMESPACE).toBe(METRICS_NAMESPACE);
    });
  });

  describe("Key policies", () => {
    const account = "111111111111";
    const root = `arn:aws:iam::${account}:root`;
    const roleArn = (name: string) => `arn:aws:iam::${account}:role/${name}`;
    const fnRole = (fn: "api" | "rotation" | "audit") => roleArn(`strongbox-${env}-${fn}`);
    const administrators = [
      roleArn(config.keyAdministratorRoleName),
      roleArn(`cdk-hnb659fds-cfn-exec-role-${account}-us-east-1`),
    ];
    const keys = () => ({ ...keysOf(t().data), ...keysOf(t().monitoring) });
    const key = (prefix: string) => {
      const found = Object.entries(keys()).find(([id]) => id.startsWith(prefix));
      expect(found).toBeDefined();
      return found?.[1] as KeyStatement[];
    };

    it("gives no key CDK's default policy: the account root never gets kms:*, nor any use unconditionally", () => {
      expect(Object.keys(keys())).toHaveLength(5);
      for (const statements of Object.values(keys())) {
        for (const s of statements.filter((s) => s.Effect === "Allow")) {
          expect(actionsOf(s)).not.toContain("kms:*");
          if (principalsOf(s).includes(root)) {
            expect(s.Condition?.ArnEquals?.["aws:PrincipalArn"]).toBeDefined();
          }
        }
      }
    });

    it("names the function roles by the names their stacks give them", () => {
      for (const fn of ["api", "rotation", "audit"] as const) {
        const role = onlyResource(t()[fn], "AWS::IAM::Role");
        expect(role.Properties.RoleName).toBe(`strongbox-${env}-${fn}`);
      }
    });

    it("denies the administrators every use of every key, and every grant to a principal", () => {
      for (const pattern of KEY_ADMINISTRATION_ACTIONS)
        expect(matches(pattern, "kms:CreateGrant")).toBe(false);
      for (const [id, statements] of Object.entries(keys())) {
        const denied = statements.filter((s) => s.Effect === "Deny" && s.Sid?.startsWith("Administrators"));
        for (const s of denied) expect(principalsOf(s).sort()).toEqual([...administrators].sort());
        const deniedActions = denied.flatMap(actionsOf);
        for (const use of [...KMS_USE_ACTIONS, "kms:CreateGrant"]) {
          expect(deniedActions.some((pattern) => matches(pattern, use))).toBe(true);
        }
        const grants = denied.find((s) => s.Sid === "AdministratorsGrantNothing");
        expect(grants?.Condition).toEqual({ Bool: { "kms:GrantIsForAWSResource": "false" } });
        const writes = denied.find((s) => s.Sid === "AdministratorsWriteNothing");
        expect(writes?.Condition).toEqual(
          id.startsWith("BootstrapSecretKey")
            ? { StringNotEquals: { "kms:ViaService": "secretsmanager.us-east-1.amazonaws.com" } }
            : undefined,
        );
      }
    });

    it("lets the key administrator and CloudFormation administer every key, and use none", () => {
      for (const pattern of KEY_ADMINISTRATION_ACTIONS) {
        for (const use of KMS_USE_ACTIONS) expect(matches(pattern, use)).toBe(false);
      }
      for (const [id, statements] of Object.entries(keys())) {
        const admin = statements.find((s) => s.Sid === "KeyAdministration");
        expect(admin).toBeDefined();
        expect(principalsOf(admin as Statement).sort()).toEqual([...administrators].sort());
        expect(actionsOf(admin as Statement)).toEqual([...KEY_ADMINISTRATION_ACTIONS]);
        for (const s of statements.filter((s) => s.Effect === "Allow" && s.Sid !== "KeyAdministration")) {
          const byAdministrators = principalsOf(s).some((p) => administrators.includes(p));
          if (!byAdministrators) continue;
          // The one exception: writing a replacement bootstrap secret, which they can never read back.
          expect(id).toMatch(/^BootstrapSecretKey/);
          expect(actionsOf(s)).toEqual(["kms:GenerateDataKey", "kms:Encrypt"]);
          expect(s.Condition).toEqual({
            StringEquals: { "kms:ViaService": "secretsmanager.us-east-1.amazonaws.com" },
          });
        }
      }
    });

    it("lets each service role use the KEK only for its own operations, and the audit role only describe it", () => {
      const statements = key("Kek");
      expect(useByRole(statements)).toEqual({
        [fnRole("api")]: ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"],
        [fnRole("rotation")]: [
          "kms:Decrypt",
          "kms:DescribeKey",
          "kms:GenerateDataKey",
          "kms:ReEncryptFrom",
          "kms:ReEncryptTo",
        ],
        [fnRole("audit")]: ["kms:DescribeKey"],
      });
      const deny = statements.find((s) => s.Sid === "RequireTenantEncryptionContext");
      expect(deny?.Condition).toEqual({ Null: { [TENANT_CONTEXT_CONDITION]: "true" } });
      expect(principalsOf(deny as Statement)).toEqual(["*"]);
    });

    it("never lets the rotation role decrypt, make or re-encrypt a `_system` data key, a wrapped payload's", () => {
      expect(SYSTEM_TENANT_CONTEXT).toBe(SYSTEM_SCOPE);
      const deny = key("Kek").find((s) => s.Sid === "RotationNeverOpensSystemDataKeys");
      expect(deny?.Effect).toBe("Deny");
      expect(actionsOf(deny as Statement).sort()).toEqual([
        "kms:Decrypt",
        "kms:GenerateDataKey*",
        "kms:ReEncrypt*",
      ]);
      expect(deny?.Condition).toEqual({
        StringEquals: { [TENANT_CONTEXT_CONDITION]: SYSTEM_SCOPE },
        ArnEquals: { "aws:PrincipalArn": fnRole("rotation") },
      });
    });

    it("lets the three writers of audit records derive chain keys from the MAC key, and nothing else", () => {
      expect(useByRole(key("AuditMacKey"))).toEqual({
        [fnRole("api")]: ["kms:GenerateMac"],
        [fnRole("rotation")]: ["kms:GenerateMac"],
        [fnRole("audit")]: ["kms:GenerateMac"],
      });
    });

    it("lets only DynamoDB use the table key, on this table's behalf", () => {
      for (const s of key("TableKey").filter((s) => s.Sid !== "KeyAdministration" && s.Effect === "Allow")) {
        expect(s.Effect).toBe("Allow");
        expect(s.Condition?.StringEquals).toMatchObject({
          "kms:ViaService": "dynamodb.us-east-1.amazonaws.com",
          "kms:CallerAccount": account,
        });
        if (actionsOf(s).some((a) => a !== "kms:DescribeKey"))
          expect(s.Condition?.StringEquals?.["kms:EncryptionContext:aws:dynamodb:tableName"]).toBe(
            `strongbox-${env}`,
          );
      }
    });

    it("encrypts the bootstrap secret under its own key, which only the API role decrypts, through Secrets Manager", () => {
      const secret = onlyResource(t().data, "AWS::SecretsManager::Secret");
      expect(JSON.stringify(secret.Properties.KmsKeyId)).toContain("BootstrapSecretKey");
      const statements = key("BootstrapSecretKey");
      expect(useByRole(statements)).toEqual({ [fnRole("api")]: ["kms:Decrypt", "kms:DescribeKey"] });
      const apiUse = statements.find((s) => principalsOf(s).includes(root));
      expect(apiUse?.Condition?.StringEquals).toEqual({
        "kms:ViaService": "secretsmanager.us-east-1.amazonaws.com",
      });
      const decrypters = statements.filter(
        (s) => s.Effect === "Allow" && actionsOf(s).includes("kms:Decrypt"),
      );
      expect(decrypters).toEqual([apiUse]);
    });

    it("lets the API read referenced secrets (CredentialRefs) only under the stage's configured name prefix", () => {
      const reads = roleStatements(t().api).filter((s) =>
        actionsOf(s).includes("secretsmanager:DescribeSecret"),
      );
      expect(reads.map(actionsOf)).toEqual([
        ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
      ]);
      const resources = JSON.stringify(reads[0]?.Resource);
      expect(resources).toContain(`:secret:${config.referencedSecretNamePrefix}*`);
      expect(resources).not.toMatch(/secret:\*"/);
      for (const other of [t().rotation, t().audit]) {
        expect(
          roleStatements(other).filter((s) => actionsOf(s).includes("secretsmanager:DescribeSecret")),
        ).toEqual([]);
      }
    });

    it("lets the API and rotation roles invoke only verification hooks named with the stage's prefix", () => {
      for (const template of [t().api, t().rotation]) {
        const invokes = roleStatements(template).filter((s) =>
          actionsOf(s).includes("lambda:InvokeFunction"),
        );
        const hooks = invokes.filter((s) =>
          JSON.stringify(s.Resource).includes(config.verifierFunctionNamePrefix),
        );
        expect(hooks.map(actionsOf)).toEqual([["lambda:InvokeFunction"]]);
        expect(JSON.stringify(hooks[0]?.Resource)).toContain(
          `:function:${config.verifierFunctionNamePrefix}*`,
        );
      }
      expect(roleStatements(t().audit).filter((s) => actionsOf(s).includes("lambda:InvokeFunction"))).toEqual(
        [],
      );
    });

    it("refuses the bootstrap secret's value to all but the API role, and changes to all but the administrators", () => {
      const policy = onlyResource(t().data, "AWS::SecretsManager::ResourcePolicy");
      expect(JSON.stringify(policy.Properties.SecretId)).toContain("BootstrapAdminToken");
      const statements = resolved(policy.Properties.ResourcePolicy.Statement as KeyStatement[]);
      const read = statements.find((s) => actionsOf(s).includes("secretsmanager:GetSecretValue"));
      expect(read).toMatchObject({
        Effect: "Deny",
        Principal: { AWS: "*" },
        Condition: { ArnNotEquals: { "aws:PrincipalArn": [fnRole("api")] } },
      });
      const change = statements.find((s) => actionsOf(s).includes("secretsmanager:PutSecretValue"));
      expect(change).toMatchObject({
        Effect: "Deny",
        Principal: { AWS: "*" },
        Condition: { ArnNotEquals: { "aws:PrincipalArn": administrators } },
      });
      expect(actionsOf(change as Statement)).toEqual(
        expect.arrayContaining([
          "secretsmanager:UpdateSecret",
          "secretsmanager:PutResourcePolicy",
          "secretsmanager:DeleteResourcePolicy",
        ]),
      );
    });

    it("gives the API role, and only it, decrypt on the secret's key, through Secrets Manager", () => {
      const onSecretKey = (template: Template) =>
        roleStatements(template).filter((s) => JSON.stringify(s.Resource).includes("BootstrapSecretKey"));
      expect(onSecretKey(t().api).map((s) => [actionsOf(s), s.Condition])).toEqual([
        [["kms:Decrypt"], { StringEquals: { "kms:ViaService": "secretsmanager.us-east-1.amazonaws.com" } }],
      ]);
      for (const other of [t().rotation, t().audit]) expect(onSecretKey(other)).toEqual([]);
    });
  });

  describe("Table access", () => {
    const writes = /^dynamodb:(PutItem|UpdateItem|DeleteItem|BatchWriteItem)$/;
    const tableStatements = (template: Template) =>
      roleStatements(template).filter((s) => actionsOf(s).some((a) => a.startsWith("dynamodb:")));
    const writePatterns = (template: Template) => {
      const statements = tableStatements(template).filter((s) => actionsOf(s).some((a) => writes.test(a)));
      expect(statements.length).toBeGreaterThan(0);
      for (const s of statements) {
        expect(s.Condition?.Null).toEqual({ "dynamodb:LeadingKeys": "false" });
        expect(Object.keys(s.Condition ?? {}).sort()).toEqual(["ForAllValues:StringLike", "Null"]);
      }
      return statements.flatMap(
        (s) => s.Condition?.["ForAllValues:StringLike"]?.["dynamodb:LeadingKeys"] as string[],
      );
    };
    const mayWrite = (template: Template, pk: string) => writePatterns(template).some((p) => matches(p, pk));

    it("narrows every role's writes to the partitions it writes", () => {
      // The API's second AUDIT#: its BatchWriteItem, which puts and clears records of the audit queue;
      // its second T#*: the DeleteItem of purges and tenant deletion.
      expect(writePatterns(t().api).sort()).toEqual([
        "AUDIT#*",
        "AUDIT#*",
        "BG#*",
        "BINDINGS",
        "BREAK-GLASS",
        "META",
        "SEAL#*",
        "T#*",
        "T#*",
        "TENANTS",
        "TOKEN#*",
        "TOKENS",
        "WRAP#*",
        "WRAPS",
      ]);
      // No WRAP#: on AWS the KEK re-wrap only reads live wraps, and waits for those under the old KEK.
      expect(writePatterns(t().rotation).sort()).toEqual(["AUDIT#*", "META", "T#*", "TENANTS"]);
      expect(writePatterns(t().audit)).toEqual(["AUDIT#*", "AUDIT#*"]);
    });

    it("lets only the API delete items, and only in tenant partitions (purges, tenant deletion)", () => {
      const deletes = (template: Template) =>
        tableStatements(template).filter((s) => actionsOf(s).includes("dynamodb:DeleteItem"));
      for (const other of [t().rotation, t().audit]) expect(deletes(other)).toEqual([]);
      const api = deletes(t().api);
      expect(api.map(actionsOf)).toEqual([["dynamodb:DeleteItem"]]);
      expect(api[0]?.Condition?.["ForAllValues:StringLike"]?.["dynamodb:LeadingKeys"]).toEqual(["T#*"]);
    });

    it("never lets the audit role write a token, a tenant or a checkpoint, nor the rotation role a token", () => {
      const token = tokenKey("tok1").pk;
      const binding = bindingKey("b1").pk;
      for (const pk of [token, binding, tenantPartition("acme"), DIRECTORY_PARTITION, KEK_REGISTRY_KEY.pk])
        expect(mayWrite(t().audit, pk)).toBe(false);
      expect(mayWrite(t().rotation, binding)).toBe(false);
      expect(mayWrite(t().api, binding)).toBe(true);
      expect(mayWrite(t().audit, auditPartition("acme"))).toBe(true);
      expect(mayWrite(t().rotation, token)).toBe(false);
      expect(mayWrite(t().api, token)).toBe(true);
      // Only the API throws the kill switch; the rotation function only reads it.
      expect(mayWrite(t().api, sealKey("acme").pk)).toBe(true);
      expect(mayWrite(t().rotation, sealKey("acme").pk)).toBe(false);
    });

    it("lets the audit role read only audit chains, tenant items and META, and the table's stream", () => {
      const streamRead = /^dynamodb:(DescribeStream|GetRecords|GetShardIterator|ListStreams)$/;
      const streams = tableStatements(t().audit).filter((s) => actionsOf(s).every((a) => streamRead.test(a)));
      expect(streams.flatMap(actionsOf).sort()).toEqual([
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
      ]);
      const reads = tableStatements(t().audit).filter(
        (s) => !actionsOf(s).some((a) => writes.test(a) || streamRead.test(a)),
      );
      for (const s of reads) {
        expect(s.Condition?.["ForAllValues:StringLike"]?.["dynamodb:LeadingKeys"]).toEqual([
          "AUDIT#*",
          "T#*",
          "META",
        ]);
        expect(s.Condition?.Null).toEqual({ "dynamodb:LeadingKeys": "false" });
      }
      expect(reads.flatMap(actionsOf).sort()).toEqual([
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:Query",
      ]);
    });

    it("lets only the rotation role Scan, and only for the directory backfill's projection", () => {
      const scans = (template: Template) =>
        roleStatements(template).filter((s) => actionsOf(s).some((a) => /^dynamodb:(Scan|\*)/.test(a)));
      for (const other of [t().api, t().audit, t().monitoring, t().data]) expect(scans(other)).toEqual([]);
      expect(scans(t().rotation).map((s) => [actionsOf(s), s.Condition])).toEqual([
        [
          ["dynamodb:Scan"],
          {
            StringEqualsIfExists: { "dynamodb:Select": "SPECIFIC_ATTRIBUTES" },
            "ForAllValues:StringEquals": { "dynamodb:Attributes": ["pk", "sk", "tenantId"] },
            Null: { "dynamodb:Attributes": "false" },
          },
        ],
      ]);
    });
  });

  describe("Events", () => {
    const variables = (template: Template) =>
      onlyResource(template, "AWS::Lambda::Function").Properties.Environment.Variables as Record<
        string,
        unknown
      >;
    const busRef = () => Object.keys(t().data.findResources("AWS::Events::EventBus"))[0] as string;

    it("has a bus of the stage's own, named for it", () => {
      t().data.resourceCountIs("AWS::Events::EventBus", 1);
      t().data.hasResourceProperties("AWS::Events::EventBus", { Name: `strongbox-${env}` });
    });

    it("hands the stage's bus to the API and rotation functions, each publishing under its own sources only", () => {
      for (const [fn, sources] of [
        // The API's re-wrap requests, and the rotation events of an on-demand run.
        ["api", ["strongbox.api", "strongbox.rotation"]],
        ["rotation", ["strongbox.rotation"]],
      ] as const) {
        expect(JSON.stringify(variables(t()[fn]).EVENT_BUS_NAME)).toContain(`Ref${busRef()}`);
        const puts = roleStatements(t()[fn]).filter((s) => actionsOf(s).some((a) => a.startsWith("events:")));
        expect(puts).toHaveLength(1);
        expect(actionsOf(puts[0] as Statement)).toEqual(["events:PutEvents"]);
        expect(JSON.stringify(puts[0]?.Resource)).toContain(busRef());
        expect(puts[0]?.Condition).toEqual({
          "ForAllValues:StringEquals": { "events:source": sources },
          Null: { "events:source": "false" },
        });
      }
      expect(variables(t().audit).EVENT_BUS_NAME).toBeUndefined();
      expect(
        roleStatements(t().audit)
          .flatMap(actionsOf)
          .filter((a) => a.startsWith("events:")),
      ).toEqual([]);
      expect(EVENT_SOURCES.rotation).toBe(ROTATION_EVENT_SOURCE);
      // The API's "Break Glass Activated" goes out under the source its grant allows.
      expect(BREAK_GLASS_EVENT).toEqual({ source: EVENT_SOURCES.api, detailType: BREAK_GLASS_ACTIVATED });
    });

    it("runs the rotation function on the API's re-wrap requests of this stage only, with retries and the DLQ", () => {
      const rules = Object.values(
        t().rotation.findResources("AWS::Events::Rule", { Properties: { EventBusName: Match.anyValue() } }),
      ) as { Properties: Record<string, any> }[];
      expect(rules).toHaveLength(1);
      const rule = rules[0]?.Properties as Record<string, any>;
      expect(JSON.stringify(rule.EventBusName)).toContain(`Ref${busRef()}`);
      expect(rule.EventPattern).toEqual({
        source: ["strongbox.api"],
        "detail-type": [REWRAP_REQUESTED],
        detail: { stage: [env] },
      });
      expect(rule.Targets).toHaveLength(1);
      expect(rule.Targets[0]).toMatchObject({
        Arn: { "Fn::GetAtt": [expect.stringMatching(/^RotationFunction/), "Arn"] },
        RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 7200 },
        DeadLetterConfig: { Arn: { "Fn::GetAtt": [expect.stringMatching(/^DeadLetterQueue/), "Arn"] } },
      });
    });
  });

  describe("Concurrency", () => {
    const fn = (template: Template) => onlyResource(template, "AWS::Lambda::Function").Properties;

    it(`reserves ${config.reservedConcurrency.audit} audit and ${config.reservedConcurrency.rotation} rotation instances, and leaves the API unreserved`, () => {
      expect(fn(t().audit).ReservedConcurrentExecutions).toBe(config.reservedConcurrency.audit);
      expect(fn(t().rotation).ReservedConcurrentExecutions).toBe(config.reservedConcurrency.rotation);
      expect(fn(t().api).ReservedConcurrentExecutions).toBeUndefined();
    });

    it("polls the audit queue with no more concurrency than is reserved, so throttling never dead-letters", () => {
      t().audit.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
        ScalingConfig: { MaximumConcurrency: config.reservedConcurrency.audit },
      });
    });
  });
});

describe("the table's partitions", () => {
  it("are named in infra as shared/storage/keys.ts lays them out", () => {
    expect(matches(PARTITIONS.tenant, tenantPartition("acme"))).toBe(true);
    expect(matches(PARTITIONS.token, tokenKey("tok1").pk)).toBe(true);
    expect(matches(PARTITIONS.audit, auditPartition("_system"))).toBe(true);
    expect(PARTITIONS.directory).toBe(DIRECTORY_PARTITION);
    expect(PARTITIONS.meta).toBe(KEK_REGISTRY_KEY.pk);
    expect(PARTITIONS.binding).toBe(bindingKey("b1").pk);
    // A tenant's pattern must not reach a token's partition, nor the directory's.
    expect(matches(PARTITIONS.tenant, tokenKey("tok1").pk)).toBe(false);
    expect(matches(PARTITIONS.tenant, DIRECTORY_PARTITION)).toBe(false);
    expect(matches(PARTITIONS.seal, sealKey("acme").pk)).toBe(true);
    expect(matches(PARTITIONS.seal, sealKey("*").pk)).toBe(true);
    expect(matches(PARTITIONS.tenant, sealKey("acme").pk)).toBe(false);
    expect(PARTITIONS.tokenDirectory).toBe(TOKEN_DIRECTORY_PARTITION);
    expect(matches(PARTITIONS.wrap, wrapKey("abc").pk)).toBe(true);
    expect(matches(PARTITIONS.breakGlass, breakGlassKey("abc").pk)).toBe(true);
    expect(PARTITIONS.wrapDirectory).toBe(WRAP_DIRECTORY_PARTITION);
    expect(PARTITIONS.breakGlassDirectory).toBe(BREAK_GLASS_DIRECTORY_PARTITION);
    expect(matches(PARTITIONS.wrap, WRAP_DIRECTORY_PARTITION)).toBe(false);
  });
});

describe("across stages", () => {
  it("gives every environment its own KEK alias, table and bootstrap secret", () => {
    const names = ENVIRONMENT_NAMES.map((env) => {
      const alias = onlyResourceOf(
        templates[env].data,
        "AWS::KMS::Alias",
        /^alias\/strongbox-(dev|staging|prod)$/,
      );
      return alias;
    });
    expect(new Set(names).size).toBe(3);
  });

  it("gives every environment its own bus", () => {
    const buses = ENVIRONMENT_NAMES.map(
      (env) =>
        (
          Object.values(templates[env].data.findResources("AWS::Events::EventBus"))[0] as {
            Properties: { Name: string };
          }
        ).Properties.Name,
    );
    expect(new Set(buses).size).toBe(3);
  });
});

function onlyResourceOf(template: Template, type: string, pattern: RegExp): string {
  const names = Object.values(template.findResources(type))
    .map((r) => (r as { Properties: { AliasName: string } }).Properties.AliasName)
    .filter((name) => pattern.test(name));
  expect(names).toHaveLength(1);
  return names[0] as string;
}
