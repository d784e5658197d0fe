import type { APIGatewayProxyEventV2, APIGatewayProxyEventV2WithIAMAuthorizer } from "aws-lambda";

/** An API Gateway HTTP API (payload format 2.0) event, as the Lambda integration delivers it. */
export function httpApiEvent(
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string; query?: string } = {},
): APIGatewayProxyEventV2 {
  const headers = { host: "api.example.test", "user-agent": "curl/8.5.0", ...options.headers };
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: path,
    rawQueryString: options.query ?? "",
    headers,
    requestContext: {
      accountId: "111122223333",
      apiId: "a1b2c3d4e5",
      domainName: "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
      domainPrefix: "a1b2c3d4e5",
      http: { method, path, protocol: "HTTP/1.1", sourceIp: "203.0.113.7", userAgent: headers["user-agent"] },
      requestId: `req-${Math.random().toString(36).slice(2)}`,
      routeKey: "$default",
      stage: "$default",
      time: "23/Nov/2026:23:00:00 +0000",
      timeEpoch: 1_795_474_800_000,
    },
    isBase64Encoded: false,
    ...(options.body === undefined ? {} : { body: options.body }),
  };
}

/** The test account: the one the loopback stage and the IAM fixtures put their principals in. */
export const IAM_ACCOUNT = "111111111111";

/**
 * An event as API Gateway delivers it from a route with IAM authorization: `requestContext.authorizer.iam`
 * names the principal whose SigV4 signature it verified. `userArn` is that principal's ARN, an
 * assumed-role session (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`) or an IAM user.
 */
export function iamApiEvent(
  method: string,
  path: string,
  userArn: string,
  options: { headers?: Record<string, string>; body?: string; query?: string; accountId?: string } = {},
): APIGatewayProxyEventV2WithIAMAuthorizer {
  const event = httpApiEvent(method, path, options);
  const accountId = options.accountId ?? IAM_ACCOUNT;
  const session = /assumed-role\/[^/]+\/(.+)$/.exec(userArn)?.[1];
  return {
    ...event,
    routeKey: "ANY /iam/{proxy+}",
    requestContext: {
      ...event.requestContext,
      routeKey: "ANY /iam/{proxy+}",
      authorizer: {
        iam: {
          accessKey: "ASIAEXAMPLEEXAMPLE00",
          accountId,
          callerId: session === undefined ? "AIDAEXAMPLEEXAMPLE00" : `AROAEXAMPLEEXAMPLE00:${session}`,
          cognitoIdentity: null,
          principalOrgId: "o-exampleorg",
          userArn,
          userId: session === undefined ? "AIDAEXAMPLEEXAMPLE00" : `AROAEXAMPLEEXAMPLE00:${session}`,
        },
      },
    },
  };
}
