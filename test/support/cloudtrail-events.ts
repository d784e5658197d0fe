import { randomUUID } from "node:crypto";
import type { SQSEvent } from "aws-lambda";

const ACCOUNT = "111122223333";

/**
 * An EventBridge "AWS API Call via CloudTrail" event for a KMS call, shaped as CloudTrail records one:
 * an assumed role's session names its issuing role in sessionContext; an IAM user is its own ARN.
 */
export function kmsCallEvent(options: {
  readonly eventName: string;
  readonly keyArn: string;
  readonly caller: { readonly role: string } | { readonly user: string };
  readonly tenant?: string;
}) {
  const identity =
    "role" in options.caller
      ? {
          type: "AssumedRole",
          principalId: `AROAEXAMPLE:${options.caller.role}-session`,
          arn: `arn:aws:sts::${ACCOUNT}:assumed-role/${options.caller.role}/${options.caller.role}-session`,
          accountId: ACCOUNT,
          sessionContext: {
            sessionIssuer: { type: "Role", arn: `arn:aws:iam::${ACCOUNT}:role/${options.caller.role}` },
          },
        }
      : {
          type: "IAMUser",
          principalId: "AIDAEXAMPLE",
          arn: `arn:aws:iam::${ACCOUNT}:user/${options.caller.user}`,
          accountId: ACCOUNT,
        };
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": "AWS API Call via CloudTrail",
    source: "aws.kms",
    account: ACCOUNT,
    time: "2026-11-23T23:00:00Z",
    region: "us-east-1",
    resources: [],
    detail: {
      eventVersion: "1.10",
      userIdentity: identity,
      eventTime: "2026-11-23T23:00:00Z",
      eventSource: "kms.amazonaws.com",
      eventName: options.eventName,
      awsRegion: "us-east-1",
      sourceIPAddress: "203.0.113.7",
      userAgent: "aws-sdk-js/3",
      requestParameters: {
        encryptionAlgorithm: "SYMMETRIC_DEFAULT",
        ...(options.tenant === undefined
          ? {}
          : { encryptionContext: { "strongbox:tenant": options.tenant, "strongbox:dek-version": "1" } }),
      },
      responseElements: null,
      requestID: randomUUID(),
      eventID: randomUUID(),
      readOnly: true,
      resources: [{ accountId: ACCOUNT, type: "AWS::KMS::Key", ARN: options.keyArn }],
      eventType: "AwsApiCall",
      managementEvent: true,
      recipientAccountId: ACCOUNT,
      eventCategory: "Management",
    },
  };
}

/** An SQS batch as the event source mapping delivers it: each body is one EventBridge event's JSON. */
export function sqsEvent(bodies: readonly string[]): SQSEvent {
  return {
    Records: bodies.map((body, n) => ({
      messageId: `message-${n}`,
      receiptHandle: `receipt-${n}`,
      body,
      attributes: {
        ApproximateReceiveCount: "1",
        SentTimestamp: "1795474800000",
        SenderId: "AIDAEVENTBRIDGE",
        ApproximateFirstReceiveTimestamp: "1795474800001",
      },
      messageAttributes: {},
      md5OfBody: "",
      eventSource: "aws:sqs",
      eventSourceARN: `arn:aws:sqs:us-east-1:${ACCOUNT}:strongbox-dev-audit-queue`,
      awsRegion: "us-east-1",
    })),
  };
}
