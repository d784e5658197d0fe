import { Duration, Stack, type StackProps } from "aws-cdk-lib";
import * as cloudtrail from "aws-cdk-lib/aws-cloudtrail";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { DynamoEventSource, SqsDlq, SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "../config.ts";
import { StrongboxFunction } from "../constructs/strongbox-function.ts";
import { auditAnchorBucketName, type DataStack } from "./data-stack.ts";
import {
  grantAnchorAppend,
  grantAuditQueueBatchWrites,
  grantMac,
  grantTableItems,
  PARTITIONS,
} from "./grants.ts";
import { secureQueue } from "./queues.ts";

export interface AuditStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly data: DataStack;
  /** The roles of the service's own functions, so the audit function can tell expected calls from others. */
  readonly serviceRoles: readonly iam.IRole[];
}

/**
 * CloudTrail's record of every call on this environment's keys, via EventBridge and SQS, into the audit
 * trail; and the audit sequencer: the table's stream of waiting audit records, in batches, into the
 * chains. The audit function can write audit records and MAC them; it can decrypt nothing.
 */
export class AuditStack extends Stack {
  readonly audit: StrongboxFunction;
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly kekRule: events.Rule;
  readonly macKeyRule: events.Rule;
  readonly trail: cloudtrail.Trail | undefined;

  constructor(scope: Construct, id: string, props: AuditStackProps) {
    super(scope, id, props);
    const { config, data } = props;
    const watchedKeys = [data.kek.keyArn, data.auditMacKey.keyArn];
    const timeout = Duration.seconds(30);

    this.deadLetterQueue = secureQueue(this, "DeadLetterQueue", { protectData: config.protectData });
    this.queue = secureQueue(this, "Queue", {
      protectData: config.protectData,
      deadLetterQueue: this.deadLetterQueue,
      // AWS's guidance for Lambda event sources: six times the function timeout.
      visibilityTimeout: Duration.seconds(timeout.toSeconds() * 6),
    });

    this.audit = new StrongboxFunction(this, "AuditFunction", {
      name: "audit",
      config,
      timeout,
      reservedConcurrentExecutions: config.reservedConcurrency.audit,
      environment: {
        TABLE_NAME: data.table.tableName,
        // Every runtime is built with the KEK settings; the audit function only describes the key at start.
        KMS_KEY_ID: data.kek.keyArn,
        WATCHED_KMS_KEY_ARNS: watchedKeys.join(","),
        SERVICE_ROLE_ARNS: props.serviceRoles.map((role) => role.roleArn).join(","),
        AUDIT_MAC_KEY_ID: data.auditMacKey.keyArn,
        AUDIT_ANCHOR_BUCKET: auditAnchorBucketName(this, config),
        // No timer runs between invocations: each stream batch anchors the heads it moved.
        AUDIT_ANCHOR_INTERVAL_SECONDS: "0",
        NODE_ENV: "production",
      },
    });
    const kmsCalls = (id: string, keyArn: string, detail: Record<string, unknown> = {}) => {
      const rule = new events.Rule(this, id, {
        description: `CloudTrail records of calls on a Strongbox ${config.name} key`,
        eventPattern: {
          source: ["aws.kms"],
          detailType: ["AWS API Call via CloudTrail"],
          detail: { resources: { ARN: [keyArn] }, ...detail },
        },
      });
      rule.addTarget(new targets.SqsQueue(this.queue, { deadLetterQueue: this.deadLetterQueue }));
      return rule;
    };
    // Every call on the KEK, the audit role's included: it holds no KEK permission, so any is an anomaly.
    this.kekRule = kmsCalls("KekCalls", data.kek.keyArn);
    // Calls on the MAC key, except the audit function's own: it MACs each record it writes, and each of
    // those calls would come back as a new event to record, without end.
    this.macKeyRule = kmsCalls("MacKeyCalls", data.auditMacKey.keyArn, {
      userIdentity: {
        arn: events.Match.anythingButPrefix(
          `arn:${this.partition}:sts::${this.account}:assumed-role/${this.audit.role.roleName}/`,
        ),
      },
    });

    this.audit.function.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: 10,
        reportBatchItemFailures: true,
        // No more pollers than reserved instances: a throttled delivery still counts as a receive, and
        // five of them would send a good event to the dead-letter queue.
        maxConcurrency: config.reservedConcurrency.audit,
      }),
    );
    // The sequencer: inserts of waiting audit records only (filtered before Lambda is invoked), in
    // batches of up to 1,000 gathered for at most a second. A batch that fails is retried from its
    // first failed record, then halved, and after the retries goes to the dead-letter queue.
    this.audit.function.addEventSource(
      // The construct's Table declares its stream ARN optional; ITable, under exactOptionalPropertyTypes, does not.
      new DynamoEventSource(data.table as unknown as dynamodb.ITable, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: 1000,
        maxBatchingWindow: Duration.seconds(1),
        bisectBatchOnError: true,
        reportBatchItemFailures: true,
        retryAttempts: 10,
        onFailure: new SqsDlq(this.deadLetterQueue),
        filters: [
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual("INSERT"),
            dynamodb: { Keys: { sk: { S: lambda.FilterRule.beginsWith("NEW#") } } },
          }),
        ],
      }),
    );
    grantAuditQueueBatchWrites(this.audit.role, data.table.tableArn);
    // BatchGetItem: the store coalesces reads asked for in the same tick, as a batch of events does.
    // It reads audit chains, tenant items (is the tenant a CloudTrail context names real?) and META
    // (the KEK registry at start-up), and writes audit records and blocks only.
    grantTableItems(this.audit.role, data.table.tableArn, {
      read: ["GetItem", "BatchGetItem", "Query"],
      readPartitions: [PARTITIONS.audit, PARTITIONS.tenant, PARTITIONS.meta],
      // Records and blocks are only ever put, each once (shared/storage/audit-repository.ts).
      write: ["PutItem"],
      writePartitions: [PARTITIONS.audit],
    });
    grantMac(this.audit.role, data.auditMacKey, ["GenerateMac"]);
    grantAnchorAppend(this.audit.role, `arn:${this.partition}:s3:::${auditAnchorBucketName(this, config)}`);
    this.audit.role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["kms:DescribeKey"], resources: [data.kek.keyArn] }),
    );

    this.trail = config.createTrail ? this.#trail() : undefined;
  }

  #trail(): cloudtrail.Trail {
    // CloudTrail's own bucket: SSE-S3, public access blocked, SSL only, and retained when the stack goes.
    return new cloudtrail.Trail(this, "Trail", {
      enableFileValidation: true,
      includeGlobalServiceEvents: true,
      managementEvents: cloudtrail.ReadWriteType.ALL,
    });
  }
}
