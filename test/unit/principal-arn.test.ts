import { describe, expect, it } from "vitest";
import { bindingIdFor } from "../../shared/crypto/binding-id.ts";
import { bindableKey, callerKey, keyString } from "../../shared/domain/principal-arn.ts";

// How a binding's ARN and a caller's ARN meet: partition, account, kind and name, without the path.

const ACCOUNT = "111111111111";
const key = (arn: string) => {
  const found = bindableKey(arn);
  return found === undefined ? undefined : keyString(found);
};
const caller = (arn: string, account = ACCOUNT) => {
  const found = callerKey(arn, account);
  return found === undefined ? undefined : keyString(found);
};

describe("principal ARNs", () => {
  it("maps an assumed-role session to its role, whatever the role's path", () => {
    const session = caller(`arn:aws:sts::${ACCOUNT}:assumed-role/reporting/i-0abc123`);
    expect(session).toBe(`aws:${ACCOUNT}:role:reporting`);
    expect(key(`arn:aws:iam::${ACCOUNT}:role/reporting`)).toBe(session);
    expect(key(`arn:aws:iam::${ACCOUNT}:role/services/batch/reporting`)).toBe(session);
  });

  it("compares names without case, as IAM keeps them unique", () => {
    expect(caller(`arn:aws:sts::${ACCOUNT}:assumed-role/Reporting/s1`)).toBe(
      key(`arn:aws:iam::${ACCOUNT}:role/reporting`),
    );
  });

  it("keeps apart what IAM keeps apart: accounts, partitions, roles and users, other names", () => {
    const role = key(`arn:aws:iam::${ACCOUNT}:role/reporting`);
    for (const other of [
      `arn:aws:iam::222222222222:role/reporting`,
      `arn:aws-cn:iam::${ACCOUNT}:role/reporting`,
      `arn:aws:iam::${ACCOUNT}:user/reporting`,
      `arn:aws:iam::${ACCOUNT}:role/reporting2`,
      `arn:aws:iam::${ACCOUNT}:role/reporting/x`,
    ]) {
      expect(key(other), other).not.toBe(role);
    }
  });

  it("maps an IAM user to itself, path dropped", () => {
    expect(caller(`arn:aws:iam::${ACCOUNT}:user/ops/alice`)).toBe(key(`arn:aws:iam::${ACCOUNT}:user/alice`));
  });

  it("binds only role and user ARNs", () => {
    for (const arn of [
      `arn:aws:sts::${ACCOUNT}:assumed-role/reporting/s1`,
      `arn:aws:iam::${ACCOUNT}:root`,
      `arn:aws:iam::${ACCOUNT}:group/ops`,
      `arn:aws:iam::${ACCOUNT}:role/*`,
      `arn:aws:iam::${ACCOUNT}:role/`,
      `arn:aws:iam::${ACCOUNT}:role/${"r".repeat(65)}`,
      `arn:aws:iam:us-east-1:${ACCOUNT}:role/reporting`,
      `arn:aws:iam::${ACCOUNT}:role/path with space/reporting`,
      "",
    ]) {
      expect(bindableKey(arn), arn).toBeUndefined();
    }
  });

  it("refuses callers no binding can name, and an ARN of another account than API Gateway reported", () => {
    expect(caller(`arn:aws:sts::${ACCOUNT}:assumed-role/reporting/s1`, "222222222222")).toBeUndefined();
    expect(caller(`arn:aws:iam::${ACCOUNT}:root`)).toBeUndefined();
    expect(caller(`arn:aws:sts::${ACCOUNT}:federated-user/bob`)).toBeUndefined();
    expect(caller(`arn:aws:iam::${ACCOUNT}:role/reporting`)).toBeUndefined();
    expect(caller(`arn:aws:sts::${ACCOUNT}:assumed-role/reporting/s1${"x".repeat(600)}`)).toBeUndefined();
  });

  it("derives one 26-character base32 binding id per principal", () => {
    const a = bindingIdFor(`aws:${ACCOUNT}:role:reporting`);
    expect(a).toMatch(/^[a-z2-7]{26}$/);
    expect(bindingIdFor(`aws:${ACCOUNT}:role:reporting`)).toBe(a);
    expect(bindingIdFor(`aws:${ACCOUNT}:role:reporting2`)).not.toBe(a);
  });
});
