import { describe, expect, it } from "vitest";
import { type Directory, parseRequest } from "../../testing/iam/aws-requests.ts";
import type { NamedPolicy, PolicyDocument } from "../../testing/iam/deployed-shape.ts";
import { PolicyEvaluator } from "../../testing/iam/policy-evaluator.ts";

// The IAM contract's evaluator on hand-made policies: how it treats KMS key policies (the account root
// delegates to IAM, a named principal is allowed by the key alone, an identity policy never suffices on
// its own) and that conditions on the encryption context see it. Every decision is the simulator's.

const ACCOUNT = "111111111111";
const KEY = `arn:aws:kms:us-east-1:${ACCOUNT}:key/0e0e0e0e-0000-4000-8000-000000000001`;
const ROLE = `arn:aws:iam::${ACCOUNT}:role/strongbox-api`;
const SESSION = `arn:aws:sts::${ACCOUNT}:assumed-role/strongbox-api/fn`;
const TABLE = `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/strongbox-dev`;

const doc = (...Statement: Record<string, unknown>[]): PolicyDocument => ({
  Version: "2012-10-17",
  Statement,
});
const identity = (...statements: Record<string, unknown>[]): NamedPolicy[] => [
  { name: "role", policy: doc(...statements) },
];
const root = {
  Effect: "Allow",
  Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` },
  Action: "kms:*",
  Resource: "*",
};
const tenantDecrypt = {
  Effect: "Allow",
  Action: "kms:Decrypt",
  Resource: KEY,
  Condition: { Null: { "kms:EncryptionContext:strongbox:tenant": "false" } },
};
const withTenant = {
  "kms:EncryptionContext:strongbox:tenant": "acme",
  "kms:EncryptionContextKeys": ["strongbox:tenant"],
  "kms:CallerAccount": ACCOUNT,
  "aws:PrincipalArn": ROLE,
};

const evaluator = new PolicyEvaluator();
const decrypt = (
  identityPolicies: NamedPolicy[],
  resourcePolicy: PolicyDocument | undefined,
  context: Record<string, string | string[]> = withTenant,
  principal = SESSION,
) =>
  evaluator.evaluate({
    principal,
    authorization: { action: "kms:Decrypt", resource: KEY, context },
    identityPolicies,
    resourcePolicy,
  });

describe("KMS key policies, as KMS applies them", () => {
  it("a key policy that trusts the account allows what the identity policy allows", async () => {
    expect(await decrypt(identity(tenantDecrypt), doc(root))).toMatchObject({ allowed: true });
  });

  it("a key policy that trusts the account allows nothing the identity policy does not", async () => {
    expect(await decrypt([], doc(root))).toMatchObject({
      allowed: false,
      reason: "because no identity-based policy allows the kms:Decrypt action",
    });
  });

  it("a key policy that names the role allows it with no identity policy at all", async () => {
    const named = { Effect: "Allow", Principal: { AWS: ROLE }, Action: "kms:Decrypt", Resource: "*" };
    expect(await decrypt([], doc(named))).toMatchObject({ allowed: true });
  });

  it("an identity policy with kms:* never suffices when the key policy neither trusts the account nor names the caller", async () => {
    const other = {
      Effect: "Allow",
      Principal: { AWS: `arn:aws:iam::${ACCOUNT}:role/other` },
      Action: "kms:*",
      Resource: "*",
    };
    const everything = identity({ Effect: "Allow", Action: "kms:*", Resource: "*" });
    expect(await decrypt(everything, doc(other))).toMatchObject({
      allowed: false,
      reason: "because no resource-based policy allows the kms:Decrypt action",
    });
    expect(await decrypt(everything, undefined)).toMatchObject({ allowed: false });
  });

  it("an account user with kms:* on * uses a key whose policy trusts the account (the default CDK key policy)", async () => {
    const everything = identity({ Effect: "Allow", Action: "kms:*", Resource: "*" });
    const user = `arn:aws:iam::${ACCOUNT}:user/poweruser`;
    expect(
      await decrypt(everything, doc(root), { ...withTenant, "aws:PrincipalArn": user }, user),
    ).toMatchObject({
      allowed: true,
    });
  });

  it("a deny in the key policy wins over every allow", async () => {
    const requireTenant = {
      Effect: "Deny",
      Principal: { AWS: "*" },
      Action: "kms:Decrypt",
      Resource: "*",
      Condition: { Null: { "kms:EncryptionContext:strongbox:tenant": "true" } },
    };
    const open = identity({ Effect: "Allow", Action: "kms:*", Resource: "*" });
    expect(await decrypt(open, doc(root, requireTenant), { "kms:CallerAccount": ACCOUNT })).toMatchObject({
      allowed: false,
      result: "ExplicitlyDenied",
      reason: "with an explicit deny in a resource-based policy",
    });
  });
});

describe("the request context", () => {
  it("conditions on kms:EncryptionContext:<key> see the key (the simulator's own filter would drop it)", async () => {
    expect(await decrypt(identity(tenantDecrypt), doc(root))).toMatchObject({ allowed: true });
    expect(await decrypt(identity(tenantDecrypt), doc(root), { "kms:CallerAccount": ACCOUNT })).toMatchObject(
      {
        allowed: false,
      },
    );
    const onlyGlobex = {
      ...tenantDecrypt,
      Condition: { StringEquals: { "kms:EncryptionContext:strongbox:tenant": "globex" } },
    };
    expect(await decrypt(identity(onlyGlobex), doc(root))).toMatchObject({ allowed: false });
  });

  it("dynamodb:LeadingKeys narrows a role to its key prefixes, and a Scan carries none", async () => {
    const policy = identity({
      Effect: "Allow",
      Action: ["dynamodb:PutItem", "dynamodb:Scan"],
      Resource: TABLE,
      Condition: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["AUDIT#*"] } },
    });
    const put = (pk: string) =>
      evaluator.evaluate({
        principal: SESSION,
        authorization: {
          action: "dynamodb:PutItem",
          resource: TABLE,
          context: { "dynamodb:LeadingKeys": [pk] },
        },
        identityPolicies: policy,
        resourcePolicy: undefined,
      });
    expect(await put("AUDIT#acme")).toMatchObject({ allowed: true });
    expect(await put("TOKEN#abc")).toMatchObject({ allowed: false });
    // ForAllValues over an absent key holds: the reason a LeadingKeys grant must never include Scan.
    const scan = await evaluator.evaluate({
      principal: SESSION,
      authorization: { action: "dynamodb:Scan", resource: TABLE, context: {} },
      identityPolicies: policy,
      resourcePolicy: undefined,
    });
    expect(scan).toMatchObject({ allowed: true });
  });

  it("answers an identical request from its cache", async () => {
    const before = evaluator.simulations;
    await decrypt(identity(tenantDecrypt), doc(root));
    await decrypt(identity(tenantDecrypt), doc(root));
    expect(evaluator.simulations).toBe(before);
  });

  it("reports a request the simulator cannot evaluate as a deny naming why", async () => {
    const decision = await evaluator.evaluate({
      principal: SESSION,
      authorization: { action: "kms:NoSuchAction", resource: KEY, context: {} },
      identityPolicies: identity({ Effect: "Allow", Action: "kms:*", Resource: "*" }),
      resourcePolicy: doc(root),
    });
    expect(decision).toMatchObject({ allowed: false, result: "SimulationError" });
  });
});

describe("reading requests off the wire", () => {
  const directory: Directory = {
    account: ACCOUNT,
    region: "us-east-1",
    partition: "aws",
    partitionKeyOf: () => "pk",
    keyArn: (id) => (id.startsWith("arn:") ? id : KEY),
    keyOfCiphertext: () => undefined,
    keyFacts: () => undefined,
    secretArn: (id) => id,
    secretKeyArn: () => KEY,
    busArn: (name) => `arn:aws:events:us-east-1:${ACCOUNT}:event-bus/${name}`,
    functionArn: (name) => `arn:aws:lambda:us-east-1:${ACCOUNT}:function:${name}`,
  };
  const wire = (target: string, body: unknown) => ({
    method: "POST",
    path: "/",
    headers: { "x-amz-target": target },
    body: JSON.stringify(body),
  });

  it("ReEncrypt needs ReEncryptFrom on the source key and ReEncryptTo on the destination, each with its context", () => {
    const other = KEY.replace("0001", "0002");
    const parsed = parseRequest(
      wire("TrentService.ReEncrypt", {
        CiphertextBlob: "AAAA",
        SourceKeyId: other,
        DestinationKeyId: KEY,
        SourceEncryptionContext: { "strongbox:tenant": "acme" },
        DestinationEncryptionContext: { "strongbox:tenant": "acme" },
      }),
      directory,
      ACCOUNT,
    );
    expect(
      parsed.authorizations.map((a) => [a.action, a.resource, a.context["kms:ReEncryptOnSameKey"]]),
    ).toEqual([
      ["kms:ReEncryptFrom", other, "false"],
      ["kms:ReEncryptTo", KEY, "false"],
    ]);
    expect(parsed.authorizations[0]?.context["kms:EncryptionContext:strongbox:tenant"]).toBe("acme");
  });

  it("Query and BatchGetItem carry the partition keys they read; an update names the attributes it sets", () => {
    const query = parseRequest(
      wire("DynamoDB_20120810.Query", {
        TableName: "strongbox-dev",
        KeyConditionExpression: "#p = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeNames: { "#p": "pk" },
        ExpressionAttributeValues: { ":pk": { S: "AUDIT#acme" }, ":prefix": { S: "B#" } },
      }),
      directory,
      ACCOUNT,
    );
    expect(query.authorizations[0]?.context["dynamodb:LeadingKeys"]).toEqual(["AUDIT#acme"]);
    const batch = parseRequest(
      wire("DynamoDB_20120810.BatchGetItem", {
        RequestItems: {
          "strongbox-dev": {
            Keys: [
              { pk: { S: "TOKEN#a" }, sk: { S: "TOKEN" } },
              { pk: { S: "T#acme" }, sk: { S: "S#x" } },
            ],
          },
        },
      }),
      directory,
      ACCOUNT,
    );
    expect(batch.authorizations[0]?.context["dynamodb:LeadingKeys"]).toEqual(["TOKEN#a", "T#acme"]);
    const update = parseRequest(
      wire("DynamoDB_20120810.UpdateItem", {
        TableName: "strongbox-dev",
        Key: { pk: { S: "TOKEN#a" }, sk: { S: "TOKEN" } },
        UpdateExpression:
          "SET #r = :now, revision = if_not_exists(revision, :zero) + :one REMOVE pending.version",
        ExpressionAttributeNames: { "#r": "revokedAt" },
      }),
      directory,
      ACCOUNT,
    );
    expect(update.authorizations[0]?.context["dynamodb:Attributes"]).toEqual([
      "pk",
      "sk",
      "revokedAt",
      "revision",
      "pending",
    ]);
  });

  it("PutEvents is authorized per bus with the sources and detail types it sends", () => {
    const parsed = parseRequest(
      wire("AWSEvents.PutEvents", {
        Entries: [
          {
            EventBusName: "strongbox-dev",
            Source: "strongbox",
            DetailType: "Secret Rotation Due",
            Detail: "{}",
          },
          { Source: "strongbox", DetailType: "DEK Rotated", Detail: "{}" },
        ],
      }),
      directory,
      ACCOUNT,
    );
    expect(
      parsed.authorizations.map((a) => [a.resource.split(":").pop(), a.context["events:detail-type"]]),
    ).toEqual([
      ["event-bus/strongbox-dev", ["Secret Rotation Due"]],
      ["event-bus/default", ["DEK Rotated"]],
    ]);
  });
});
