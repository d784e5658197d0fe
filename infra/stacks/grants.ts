import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import { TENANT_CONTEXT_CONDITION } from "./data-stack.ts";

/**
 * Grants written out by hand rather than with `table.grantReadWriteData`: that helper also grants the
 * table's key (kms:Decrypt, kms:ReEncrypt*, ...) without conditions, which is exactly what the KEK's
 * least-privilege rules forbid. Table encryption is allowed by the key policy instead.
 */
export function grantTableItems(role: iam.IRole, tableArn: string, actions: readonly string[]): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: actions.map((action) => `dynamodb:${action}`),
      resources: [tableArn],
    }),
  );
}

/** KEK operations, usable only with the tenant in the encryption context. */
export function grantKekUse(role: iam.IRole, keys: readonly kms.IKey[], actions: readonly string[]): void {
  const resources = keys.map((key) => key.keyArn);
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: actions.map((action) => `kms:${action}`),
      resources,
      conditions: { Null: { [TENANT_CONTEXT_CONDITION]: "false" } },
    }),
  );
  // DescribeKey carries no context: the keyring resolves aliases and checks the KEK at start-up with it.
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["kms:DescribeKey"], resources }));
}

export function grantMac(role: iam.IRole, key: kms.IKey, actions: readonly string[]): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: actions.map((action) => `kms:${action}`),
      resources: [key.keyArn],
    }),
  );
}
