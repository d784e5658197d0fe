import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";

/**
 * SQS with SQS-managed encryption: a customer key would make every consumer need kms:Decrypt, and the
 * audit role must hold no decrypt permission at all.
 */
export function secureQueue(
  scope: Construct,
  id: string,
  props: {
    readonly protectData: boolean;
    readonly deadLetterQueue?: sqs.IQueue;
    readonly visibilityTimeout?: Duration;
  },
): sqs.Queue {
  return new sqs.Queue(scope, id, {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
    removalPolicy: props.protectData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    ...(props.visibilityTimeout === undefined ? {} : { visibilityTimeout: props.visibilityTimeout }),
    ...(props.deadLetterQueue === undefined
      ? {}
      : { deadLetterQueue: { queue: props.deadLetterQueue, maxReceiveCount: 5 } }),
  });
}
