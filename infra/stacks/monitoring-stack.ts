import { Duration, Stack, type StackProps } from "aws-cdk-lib";
import type * as apigw from "aws-cdk-lib/aws-apigatewayv2";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as sns from "aws-cdk-lib/aws-sns";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "../config.ts";
import type { StrongboxFunction } from "../constructs/strongbox-function.ts";
import { keyPolicy } from "./key-policies.ts";

/**
 * Where the Lambda runtime's EmfMetrics (shared/observability/emf-metrics.ts) publishes: namespace
 * "Strongbox", dimensions `service` and `environment` (from STRONGBOX_ENVIRONMENT, which the house
 * construct sets), so each stage's alarms count only its own functions even in a shared account.
 */
export const METRIC_NAMESPACE = "Strongbox";
const metricDimensions = (environment: string) => ({ service: "strongbox", environment });

export interface MonitoringStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly functions: Readonly<Record<string, StrongboxFunction>>;
  readonly httpApi: apigw.HttpApi;
  /** Where undeliverable events end up; a message there is work (an audit record, a rotation) not done. */
  readonly deadLetterQueues: Readonly<Record<string, sqs.IQueue>>;
}

const PERIOD = Duration.minutes(5);

/** Every alarm of the environment on one topic, and one dashboard of the same metrics. */
export class MonitoringStack extends Stack {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: MonitoringStackProps) {
    super(scope, id, props);
    const { config } = props;

    const topicKey = new kms.Key(this, "AlarmTopicKey", {
      description: `Strongbox ${config.name} alarm topic`,
      enableKeyRotation: true,
      policy: keyPolicy(this, config, [
        // CloudWatch publishes alarm notifications to the encrypted topic itself, so it must use the key.
        new iam.PolicyStatement({
          sid: "CloudWatchPublishesAlarms",
          principals: [new iam.ServicePrincipal("cloudwatch.amazonaws.com")],
          actions: ["kms:Decrypt", "kms:GenerateDataKey*"],
          resources: ["*"],
          conditions: { StringEquals: { "aws:SourceAccount": this.account } },
        }),
      ]),
    });
    this.topic = new sns.Topic(this, "AlarmTopic", {
      displayName: `Strongbox ${config.name} alarms`,
      masterKey: topicKey,
      enforceSSL: true,
    });

    const service = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({
        namespace: METRIC_NAMESPACE,
        metricName,
        dimensionsMap: metricDimensions(config.name),
        statistic,
        period: PERIOD,
      });
    const alarm = (
      id: string,
      metric: cloudwatch.IMetric,
      comparison: cloudwatch.ComparisonOperator,
      threshold: number,
      description: string,
    ) => {
      const created = new cloudwatch.Alarm(this, id, {
        alarmName: `strongbox-${config.name}-${id}`,
        alarmDescription: description,
        metric,
        threshold,
        comparisonOperator: comparison,
        evaluationPeriods: 1,
        // No data means nothing happened (functions idle), not that something failed.
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      created.addAlarmAction(new actions.SnsAction(this.topic));
      this.alarms.push(created);
      return created;
    };
    const above = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD;

    alarm(
      "DecryptFailures",
      service("DecryptFailures", "Sum"),
      above,
      config.alarms.decryptFailureThreshold,
      "Secret values failed to decrypt: tampering, a wrong KEK, or a damaged item",
    );
    alarm(
      "KekNotConfigured",
      service("KekConfigured", "Minimum"),
      cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      1,
      "A function started without a usable KEK (KekConfigured = 0)",
    );
    alarm(
      "AuditWriteFailures",
      service("AuditWriteFailures", "Sum"),
      above,
      0,
      "Audit records could not be written",
    );
    alarm(
      "KmsAnomalies",
      service("KmsAnomalies", "Sum"),
      above,
      0,
      "KMS calls on this environment's keys by an unexpected principal",
    );
    alarm(
      "IntegrityFailures",
      service("IntegrityFailures", "Sum"),
      above,
      0,
      "A token item failed its MAC: someone wrote authority into the table directly",
    );
    alarm(
      "GlobalSealActive",
      service("GlobalSealActive", "Sum"),
      above,
      0,
      "Every tenant is sealed by the kill switch (POST /v1/seal): requests are refused until an admin unseals",
    );
    alarm(
      "SealRefusals",
      service("SealRefusals", "Sum"),
      above,
      0,
      "Requests were refused because their tenant is sealed: a sealed tenant is still being called",
    );
    alarm(
      "BreakGlassActive",
      service("BreakGlassActive", "Sum"),
      above,
      0,
      "A break-glass credential was activated or used: elevated access to a tenant is live",
    );
    alarm(
      "RotationFailures",
      service("RotationFailures", "Sum"),
      above,
      0,
      "A rotation run failed for at least one tenant",
    );
    for (const [name, fn] of Object.entries(props.functions)) {
      alarm(
        `${name}-Errors`,
        fn.function.metricErrors({ period: PERIOD }),
        above,
        0,
        `${name} function errors`,
      );
      alarm(
        `${name}-Throttles`,
        fn.function.metricThrottles({ period: PERIOD }),
        above,
        0,
        `${name} function throttled`,
      );
    }
    for (const [name, queue] of Object.entries(props.deadLetterQueues)) {
      alarm(
        `${name}-DeadLetters`,
        queue.metricApproximateNumberOfMessagesVisible({ period: PERIOD, statistic: "Maximum" }),
        above,
        0,
        `${name} events in the dead-letter queue: work that was given up on and must be replayed`,
      );
    }
    alarm(
      "Api5xx",
      props.httpApi.metricServerError({ period: PERIOD }),
      above,
      0,
      "The API answered with 5xx",
    );

    const dashboard = new cloudwatch.Dashboard(this, "Dashboard", {
      dashboardName: `strongbox-${config.name}`,
    });
    dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: "Alarms", alarms: this.alarms, width: 24 }),
    );
    dashboard.addWidgets(
      ...this.alarms.map(
        (a) => new cloudwatch.AlarmWidget({ title: a.node.id, alarm: a, width: 6, height: 5 }),
      ),
    );
  }
}
