import type { Principal } from "./types.ts";

/** Who is asking and under which request id; every use case takes one. */
export interface RequestContext {
  readonly requestId: string;
  readonly principal: Principal;
}

/**
 * The IAM principal API Gateway's IAM authorizer verified (SigV4) and put in the event's
 * `requestContext.authorizer.iam`. Only the Lambda event can carry one: never a header.
 */
export interface IamIdentity {
  /** `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` or `arn:aws:iam::ACCOUNT:user/PATH/NAME`. */
  readonly userArn: string;
  readonly accountId: string;
}

/**
 * What a request offers to prove who it is: a bearer header on the `/v1` routes, or, on the `/iam/v1`
 * routes, the IAM identity API Gateway verified (undefined when the event carries none).
 */
export type Credentials =
  | { readonly kind: "bearer"; readonly authorization: string | undefined }
  | { readonly kind: "iam"; readonly identity: IamIdentity | undefined };

/** A request whose credentials are not yet verified, for use cases that verify them themselves. */
export interface Caller {
  readonly requestId: string;
  readonly credentials: Credentials;
}
