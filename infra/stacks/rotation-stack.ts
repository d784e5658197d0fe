import { Duration, Stack, type StackProps } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "../config.ts";
import { StrongboxFunction } from "../constructs/strongbox-function.ts";
import type { DataStack } from "./data-stack.ts";
import { EVENT_SOURCES, REWRAP_REQUESTED } from "./event-contract.ts";
import {
  grantDirectoryBackfillScan,
  grantKekUse,
  grantMac,
  grantPutEvents,
  grantTableItems,
  grantVerifierInvoke,
  PARTITIONS,
} from "./grants.ts";
import { secureQueue } from "./queues.ts";

export interface RotationStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly data: DataStack;
}

/**
 * The rotation function, run on a schedule and on the API's re-wrap requests: the only function allowed
 * to re-encrypt DEKs under the KEK.
 */
export class RotationStack extends Stack {
  readonly rotation: StrongboxFunction;
  readonly deadLetterQueue: sqs.Queue;
  readonly schedule: events.Rule;
  readonly rewrapRequests: events.Rule;

  constructor(scope: Construct, id: string, props: RotationStackProps) {
    super(scope, id, props);
    const { config, data } = props;
    const bus = data.bus;

    this.deadLetterQueue = secureQueue(this, "DeadLetterQueue", { protectData: config.protectData });
    this.rotation = new StrongboxFunction(this, "RotationFunction", {
      name: "rotation",
      config,
      timeout: Duration.minutes(5),
      deadLetterQueue: this.deadLetterQueue,
      reservedConcurrentExecutions: config.reservedConcurrency.rotation,
      environment: {
        TABLE_NAME: data.table.tableName,
        KMS_KEY_ID: data.kek.keyArn,
        AUDIT_MAC_KEY_ID: data.auditMacKey.keyArn,
        EVENT_BUS_NAME: bus.eventBusName,
        // The on-demand and the scheduled run rotate DEKs past the same period.
        DEK_ROTATION_PERIOD_DAYS: String(config.dekRotationPeriodDays),
        NODE_ENV: "production",
      },
    });
    const role = this.rotation.role;
    grantVerifierInvoke(role, this, config.verifierFunctionNamePrefix);
    // Tenants and their secrets, audit blocks, the directory and META checkpoints; never a token. The
    // live wraps too, which the KEK re-wrap visits. A wrap's payload may be a whole admin token, under a
    // `_system` data key that this role may not decrypt, make or re-encrypt (the KEK's policy and
    // grantKekUse below), so reading the envelope gives it nothing: the re-wrap waits for a wrap under
    // the old KEK to be used or expire instead. Nor does it re-key their MACs: KMS_KEY_ID does not change
    // their key. So it writes no wrap at all.
    grantTableItems(role, data.table.tableArn, {
      read: ["GetItem", "BatchGetItem", "Query"],
      // Reads too: the backfill Scan lists partition keys, token ids among them, and must lead nowhere.
      // The seal items: the service's own work on a sealed tenant is refused too.
      readPartitions: [
        PARTITIONS.tenant,
        PARTITIONS.audit,
        PARTITIONS.directory,
        PARTITIONS.meta,
        PARTITIONS.seal,
        PARTITIONS.wrap,
        PARTITIONS.wrapDirectory,
      ],
      write: ["PutItem", "UpdateItem"],
      writePartitions: [PARTITIONS.tenant, PARTITIONS.audit, PARTITIONS.directory, PARTITIONS.meta],
    });
    grantDirectoryBackfillScan(role, data.table.tableArn);
    grantKekUse(role, [data.kek], ["GenerateDataKey", "Decrypt", "ReEncryptFrom", "ReEncryptTo"], {
      neverOpenSystemKeys: true,
    });
    grantMac(role, data.auditMacKey, ["GenerateMac"]);
    grantPutEvents(role, bus.eventBusArn, [EVENT_SOURCES.rotation]);

    const invoke = () =>
      new targets.LambdaFunction(this.rotation.function, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 2,
        maxEventAge: Duration.hours(2),
      });
    this.schedule = new events.Rule(this, "Schedule", {
      description: `Strongbox ${config.name} rotation run`,
      schedule: events.Schedule.expression(config.rotationSchedule),
    });
    this.schedule.addTarget(invoke());
    // The stage filter holds even if another stage's API were ever pointed at this bus.
    this.rewrapRequests = new events.Rule(this, "RewrapRequests", {
      description: `Strongbox ${config.name} KEK re-wrap requested by the API`,
      eventBus: bus,
      eventPattern: {
        source: [EVENT_SOURCES.api],
        detailType: [REWRAP_REQUESTED],
        detail: { stage: [config.name] },
      },
    });
    this.rewrapRequests.addTarget(invoke());
  }
}
