import { Match, type Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { ENVIRONMENT_NAMES, environmentConfig } from "../../infra/config.ts";
import { TENANT_CONTEXT_CONDITION } from "../../infra/stacks/data-stack.ts";
import { METRIC_NAMESPACE } from "../../infra/stacks/monitoring-stack.ts";
import { METRICS_NAMESPACE } from "../../shared/observability/emf-metrics.ts";
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
      const statements = kek?.Properties.KeyPolicy.Statement as Statement[];
      const deny = statements.find((s) => s.Effect === "Deny");
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

    it("throttles and access-logs the HTTP API, without headers or bodies in the log", () => {
      const stage = onlyResource(t().api, "AWS::ApiGatewayV2::Stage");
      expect(stage.Properties.DefaultRouteSettings).toEqual({
        ThrottlingRateLimit: config.api.rateLimit,
        ThrottlingBurstLimit: config.api.burstLimit,
      });
      expect(stage.Properties.AccessLogSettings.DestinationArn).toBeDefined();
      expect(stage.Properties.AccessLogSettings.Format).not.toMatch(/header|authorization|body/i);
    });

    it("lets the API role use the KEK only with the tenant in the encryption context, and never re-encrypt", () => {
      const statements = roleStatements(t().api);
      const crypto = statements.filter((s) => actionsOf(s).some((a) => kmsCrypto.test(a)));
      expect(crypto.flatMap(actionsOf).sort()).toEqual(["kms:Decrypt", "kms:GenerateDataKey"]);
      for (const s of crypto) expect(s.Condition).toEqual({ Null: { [TENANT_CONTEXT_CONDITION]: "false" } });
      expect(statements.flatMap(actionsOf).filter((a) => a.includes("*"))).toEqual([]);
    });

    it("scopes the API role to its own table, keys and secret", () => {
      for (const s of roleStatements(t().api)) {
        const resource = JSON.stringify(s.Resource);
        if (actionsOf(s).some((a) => a.startsWith("dynamodb:")))
          expect(resource).toMatch(/strongbox-\w+-data:.*Table/);
        if (actionsOf(s).some((a) => a.startsWith("secretsmanager:")))
          expect(resource).toContain("BootstrapAdminToken");
        if (actionsOf(s).some((a) => a.startsWith("kms:"))) expect(resource).toMatch(/Kek|AuditMacKey/);
        if (!actionsOf(s).some((a) => a.startsWith("xray:"))) expect(s.Resource).not.toBe("*");
      }
      expect(JSON.stringify(roleStatements(t().api))).toContain(`strongbox-${env}-data`);
    });
  });

  describe("Rotation", () => {
    it("runs on the stage's schedule with a dead-letter queue for the function and the rule target", () => {
      const rule = onlyResource(t().rotation, "AWS::Events::Rule");
      expect(rule.Properties.ScheduleExpression).toBe(config.rotationSchedule);
      expect(rule.Properties.Targets[0].DeadLetterConfig.Arn).toBeDefined();
      const fn = onlyResource(t().rotation, "AWS::Lambda::Function");
      expect(fn.Properties.DeadLetterConfig.TargetArn).toBeDefined();
      expect(fn.Properties.Environment.Variables).toMatchObject({ EVENT_BUS_NAME: "default" });
    });

    it("is the only role that may re-encrypt, and only with the tenant in the encryption context", () => {
      const reEncrypt = (template: Template) =>
        roleStatements(template).filter((s) => actionsOf(s).some((a) => a.startsWith("kms:ReEncrypt")));
      expect(reEncrypt(t().rotation)).toHaveLength(1);
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

    it("gives the audit role no decrypt permission at all", () => {
      const actions = roleStatements(t().audit).flatMap(actionsOf);
      expect(actions.filter((a) => kmsCrypto.test(a))).toEqual([]);
      expect(actions).toEqual(expect.arrayContaining(["kms:GenerateMac", "sqs:ReceiveMessage"]));
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
      for (const name of ["AuditWriteFailures", "KmsAnomalies", "RotationFailures"]) {
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
});

function onlyResourceOf(template: Template, type: string, pattern: RegExp): string {
  const names = Object.values(template.findResources(type))
    .map((r) => (r as { Properties: { AliasName: string } }).Properties.AliasName)
    .filter((name) => pattern.test(name));
  expect(names).toHaveLength(1);
  return names[0] as string;
}
