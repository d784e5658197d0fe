import { randomUUID } from "node:crypto";
import type { SQSEvent, SQSRecord } from "aws-lambda";

/*
 * Fixtures in the documented shapes: an EventBridge "AWS API Call via CloudTrail" event whose detail is
 * a CloudTrail record of a KMS call, delivered as the body of an SQS message.
 */

export const ACCOUNT = "111122223333";
export const REGION = "us-east-1";

export type Caller = { readonly role: string; readonly session: string } | { readonly user: string };

/** `userIdentity` for an assumed-role session (as Lambda functions call) or an IAM user. */
function userIdentity(caller: Caller, account: string): Record<string, unknown> {
  if ("user" in caller) {
    return {
      type: "IAMUser",
      principalId: "AIDAEXAMPLEUSERID",
      arn: `arn:aws:iam::${account}:user/${caller.user}`,
      accountId: account,
      accessKeyId: "AKIAEXAMPLEKEYID",
      userName: caller.user,
    };
  }
  const roleName = caller.role.split("/").pop();
  return {
    type: "AssumedRole",
    principalId: `AROAEXAMPLEROLEID:${caller.session}`,
    arn: `arn:aws:sts::${account}:assumed-role/${roleName}/${caller.session}`,
    accountId: account,
    accessKeyId: "ASIAEXAMPLEKEYID",
    sessionContext: {
      sessionIssuer: {
        type: "Role",
        principalId: "AROAEXAMPLEROLEID",
        arn: caller.role,
        accountId: account,
        userName: roleName,
      },
      attributes: { creationDate: "2026-11-23T08:00:00Z", mfaAuthenticated: "false" },
    },
  };
}

export function kmsCallEvent(options: {
  readonly eventName: string;
  readonly caller: Caller;
  readonly keyArn: string;
  /** The tenant in the call's encryption context, as the service's keyrings send it. */
  readonly tenant?: string;
  readonly requestParameters?: Record<string, unknown>;
  readonly errorCode?: string;
}): Record<string, unknown> {
  const eventTime = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
  // The account of the key, so that a stage's key ARNs give events of that stage's account.
  const account = options.keyArn.split(":")[4] || ACCOUNT;
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": "AWS API Call via CloudTrail",
    source: "aws.kms",
    account,
    time: eventTime,
    region: REGION,
    resources: [],
    detail: {
      eventVersion: "1.11",
      userIdentity: userIdentity(options.caller, account),
      eventTime,
      eventSource: "kms.amazonaws.com",
      eventName: options.eventName,
      awsRegion: REGION,
      sourceIPAddress: "lambda.amazonaws.com",
      userAgent: "aws-sdk-js/3",
      requestParameters: options.requestParameters ?? {
        keyId: options.keyArn,
        ...(options.tenant === undefined
          ? {}
          : { encryptionContext: { "strongbox:tenant": options.tenant, "strongbox:dek-version": "1" } }),
      },
      responseElements: null,
      ...(options.errorCode === undefined
        ? {}
        : { errorCode: options.errorCode, errorMessage: "refused by the key policy" }),
      requestID: randomUUID(),
      eventID: randomUUID(),
      readOnly: options.eventName === "Decrypt" || options.eventName.startsWith("Generate"),
      resources: [{ accountId: account, type: "AWS::KMS::Key", ARN: options.keyArn }],
      eventType: "AwsApiCall",
      managementEvent: true,
      recipientAccountId: account,
      eventCategory: "Management",
    },
  };
}

export function sqsRecord(body: string): SQSRecord {
  return {
    messageId: randomUUID(),
    receiptHandle: `handle-${randomUUID()}`,
    body,
    attributes: {
      ApproximateReceiveCount: "1",
      SentTimestamp: String(Date.now()),
      SenderId: "AIDAEXAMPLESENDER",
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: "0".repeat(32),
    eventSource: "aws:sqs",
    eventSourceARN: `arn:aws:sqs:${REGION}:${ACCOUNT}:strongbox-kms-events`,
    awsRegion: REGION,
  };
}

export const sqsBatch = (...bodies: string[]): SQSEvent => ({ Records: bodies.map(sqsRecord) });
