import { ValidationError } from "./errors.ts";

/**
 * A `CredentialRef` (seed 002 §3.2): a secret whose value lives in AWS Secrets Manager and is resolved
 * at read time. Only the reference is stored (sealed like a value, and beside it in plain text, since a
 * reference names where a value is, never the value); reads resolve it under the same checks and audit.
 */
export interface CredentialRef {
  /** The reference as written, which is what errors, listings and audit records name. */
  readonly uri: string;
  /** A Secrets Manager secret ARN or name. */
  readonly secretId: string;
  /** A key of the secret's JSON object to return instead of the whole string. */
  readonly jsonKey?: string;
  /** AWSCURRENT unless given. */
  readonly versionStage?: string;
}

export const REFERENCE_SCHEME = "aws-sm://";
const MAX_URI_LENGTH = 2048;
const SECRET_ARN =
  /^arn:aws(?:-[a-z]+)*:secretsmanager:[a-z]{2}(?:-[a-z]+)+-\d:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$/;
const SECRET_NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
const JSON_KEY = /^[A-Za-z0-9_.-]{1,256}$/;
const VERSION_STAGE = /^[A-Za-z0-9_-]{1,256}$/;

/** Shortened for messages, so a value pasted by mistake in place of a reference is not echoed whole. */
export const describeReference = (uri: string) => (uri.length > 200 ? `${uri.slice(0, 200)}…` : uri);

/** `aws-sm://<ARN or name>[#jsonKey][?versionStage=STAGE]`; anything else is a 400 naming the reference. */
export function parseCredentialRef(uri: string): CredentialRef {
  const named = describeReference(uri);
  if (uri.length > MAX_URI_LENGTH)
    throw new ValidationError(`reference ${named} is longer than ${MAX_URI_LENGTH}`);
  if (!uri.startsWith(REFERENCE_SCHEME)) {
    throw new ValidationError(
      `reference ${named} has an unsupported scheme; only ${REFERENCE_SCHEME} is supported`,
    );
  }
  let rest = uri.slice(REFERENCE_SCHEME.length);
  let versionStage: string | undefined;
  const query = rest.indexOf("?");
  if (query >= 0) {
    const match = /^versionStage=(.*)$/.exec(rest.slice(query + 1));
    if (match === null || !VERSION_STAGE.test(match[1] ?? "")) {
      throw new ValidationError(`reference ${named}: the only query is versionStage=<stage>`);
    }
    versionStage = match[1];
    rest = rest.slice(0, query);
  }
  let jsonKey: string | undefined;
  const hash = rest.indexOf("#");
  if (hash >= 0) {
    jsonKey = rest.slice(hash + 1);
    if (!JSON_KEY.test(jsonKey)) throw new ValidationError(`reference ${named} has a malformed #jsonKey`);
    rest = rest.slice(0, hash);
  }
  if (rest.startsWith("arn:")) {
    if (!SECRET_ARN.test(rest)) throw new ValidationError(`reference ${named} has a malformed secret ARN`);
  } else if (!SECRET_NAME.test(rest)) {
    throw new ValidationError(`reference ${named} names no secret ARN or name`);
  }
  return {
    uri,
    secretId: rest,
    ...(jsonKey === undefined ? {} : { jsonKey }),
    ...(versionStage === undefined ? {} : { versionStage }),
  };
}

/** What resolving a reference gives: the value, and when the referenced secret rotates next. */
export interface ResolvedReference {
  readonly value: string;
  readonly rotationDueAt?: string;
}

/** Resolves references; implemented beside the Secrets Manager client (shared/references/). */
export interface ReferenceResolver {
  resolve(ref: CredentialRef): Promise<ResolvedReference>;
  /** The referenced secret's rotation metadata only, never its value: for writes and listings. */
  describe(ref: CredentialRef): Promise<{ readonly rotationDueAt?: string }>;
}
