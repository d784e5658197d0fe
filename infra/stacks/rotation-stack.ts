import { Duration, Stack, type StackProps } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "../config.ts";
import { StrongboxFunction } from "../constructs/strongbox-function.ts";
import type { DataStack } from "./data-stack.ts";
import { grantKekUse, grantMac, grantTableItems } from "./grants.ts";
import { secureQueue } from "./queues.ts";

export interface RotationStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly data: DataStack;
}

/** The scheduled rotation run: the only function allowed to re-encrypt DEKs under the KEK. */
export class RotationStack extends Stack {
  readonly rotation: StrongboxFunction;
  readonly deadLetterQueue: sqs.Queue;
  readonly schedule: events.Rule;

  constructor(scope: Construct, id: string, props: RotationStackProps) {
    super(scope, id, props);
    const { config, data } = props;
    const bus = events.EventBus.fromEventBusName(this, "DefaultBus", "default");

    this.deadLetterQueue = secureQueue(this, "DeadLetterQueue", { protectData: config.protectData });
    this.rotation = new StrongboxFunction(this, "RotationFunction", {
      name: "rotation",
      config,
      timeout: Duration.minutes(5),
      deadLetterQueue: this.deadLetterQueue,
      environment: {
        TABLE_NAME: data.table.tableName,
        KMS_KEY_ID: data.kek.keyArn,
        AUDIT_MAC_KEY_ID: data.auditMacKey.keyArn,
        EVENT_BUS_NAME: bus.eventBusName,
        NODE_ENV: "production",
      },
    });
    const role = this.rotation.role;
    grantTableItems(role, data.table.tableArn, ["GetItem", "BatchGetItem", "PutItem", "UpdateItem", "Query"]);
    grantKekUse(role, [data.kek], ["GenerateDataKey", "Decrypt", "ReEncryptFrom", "ReEncryptTo"]);
    grantMac(role, data.auditMacKey, ["GenerateMac"]);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["events:PutEvents"], resources: [bus.eventBusArn] }),
    );

    this.schedule = new events.Rule(this, "Schedule", {
      description: `Strongbox ${config.name} rotation run`,
      schedule: events.Schedule.expression(config.rotationSchedule),
    });
    this.schedule.addTarget(
      new targets.LambdaFunction(this.rotation.function, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 2,
        maxEventAge: Duration.hours(2),
      }),
    );
  }
}
