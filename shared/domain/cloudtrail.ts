import * as z from "zod";

/**
 * The part of an EventBridge "AWS API Call via CloudTrail" event from `aws.kms` that ingestion reads.
 * The envelope (`source`, `detail-type`, `detail`) is EventBridge's; `detail` is the CloudTrail
 * record. Other fields are allowed and ignored: CloudTrail adds fields over time.
 */
const arnLike = z.string().min(1).max(2048);

const userIdentitySchema = z.object({
  type: z.string().min(1).max(64),
  arn: arnLike.optional(),
  principalId: z.string().max(512).optional(),
  accountId: z.string().max(32).optional(),
  /** Set when an AWS service made the call on someone's behalf. */
  invokedBy: z.string().max(512).optional(),
  sessionContext: z
    .object({
      sessionIssuer: z.object({ type: z.string().max(64).optional(), arn: arnLike.optional() }).optional(),
    })
    .optional(),
});

export const kmsApiCallEventSchema = z.object({
  source: z.literal("aws.kms"),
  "detail-type": z.literal("AWS API Call via CloudTrail"),
  detail: z.object({
    eventSource: z.literal("kms.amazonaws.com"),
    eventName: z.string().regex(/^[A-Za-z]{1,64}$/),
    eventTime: z.iso.datetime(),
    eventID: z.string().regex(/^[A-Za-z0-9-]{1,128}$/),
    userIdentity: userIdentitySchema,
    requestParameters: z
      .object({
        keyId: z.string().max(2048).optional(),
        encryptionContext: z.record(z.string(), z.string()).optional(),
      })
      .nullish(),
    resources: z.array(z.object({ ARN: arnLike.optional() })).optional(),
    errorCode: z.string().max(256).optional(),
  }),
});

export type KmsApiCallEvent = z.infer<typeof kmsApiCallEventSchema>;
export type KmsApiCall = KmsApiCallEvent["detail"];
