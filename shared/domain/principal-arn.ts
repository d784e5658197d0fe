/**
 * How an IAM principal is named, so that a binding and a caller meet on one key.
 *
 * A binding names a role (`arn:aws:iam::ACCOUNT:role/PATH/NAME`) or a user
 * (`arn:aws:iam::ACCOUNT:user/PATH/NAME`). A caller with a role arrives as a session,
 * `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`, whose ARN drops the role's path. Both therefore
 * reduce to partition, account, kind and name, without the path: IAM keeps role names (and user
 * names) unique in an account whatever their path, and without regard to case, so the name is
 * compared lower-cased. A role deleted and created again under the same name keeps its bindings;
 * delete the binding with the role (docs/api.md#bindings).
 */
export interface PrincipalKey {
  readonly partition: string;
  readonly account: string;
  readonly kind: "role" | "user";
  readonly name: string;
}

const PARTITION = "(aws|aws-cn|aws-us-gov)";
const ACCOUNT = "(\\d{12})";
/** IAM's name alphabet; role names are 1 to 64 characters, user names too. */
const NAME = "([\\w+=,.@-]{1,64})";
/** `/` or `/segments/`, printable ASCII (IAM's path rule), at most 512 characters. */
const PATH = "(/(?:[\\x21-\\x7e]{0,510}/)?)";

const BINDABLE = new RegExp(`^arn:${PARTITION}:iam::${ACCOUNT}:(role|user)${PATH}${NAME}$`);
const ASSUMED_ROLE = new RegExp(
  `^arn:${PARTITION}:sts::${ACCOUNT}:assumed-role/${NAME}/([\\w+=,.@-]{2,64})$`,
);
const USER = new RegExp(`^arn:${PARTITION}:iam::${ACCOUNT}:user${PATH}${NAME}$`);

/** The longest principal ARN either side accepts: the audit trail's actor field holds 512 characters. */
const MAX_ARN_LENGTH = 512;

/** The key of a role or user ARN an admin binds; undefined for anything else (a session, root, a typo). */
export function bindableKey(arn: string): PrincipalKey | undefined {
  if (typeof arn !== "string" || arn.length > MAX_ARN_LENGTH) return undefined;
  const match = BINDABLE.exec(arn);
  if (match === null) return undefined;
  const [, partition = "", account = "", kind, , name = ""] = match;
  return { partition, account, kind: kind === "role" ? "role" : "user", name: name.toLowerCase() };
}

/**
 * The key of the caller API Gateway verified: an assumed-role session maps to its role, a user to
 * itself. Undefined for what no binding can name (root, a federated user, an ARN of another account
 * than the one API Gateway reported), which is refused as an unknown principal.
 */
export function callerKey(userArn: string, accountId: string): PrincipalKey | undefined {
  if (typeof userArn !== "string" || userArn.length > MAX_ARN_LENGTH) return undefined;
  const session = ASSUMED_ROLE.exec(userArn);
  if (session !== null) {
    const [, partition = "", account = "", name = ""] = session;
    return account === accountId ? { partition, account, kind: "role", name: name.toLowerCase() } : undefined;
  }
  const user = USER.exec(userArn);
  if (user !== null) {
    const [, partition = "", account = "", , name = ""] = user;
    return account === accountId ? { partition, account, kind: "user", name: name.toLowerCase() } : undefined;
  }
  return undefined;
}

/** The key as one string: what a binding's id is derived from. */
export function keyString(key: PrincipalKey): string {
  return `${key.partition}:${key.account}:${key.kind}:${key.name}`;
}
