import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import * as iam from "aws-cdk-lib/aws-iam";
import { beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../infra/build.ts";
import { IAM_ROUTE_PREFIX, TENANT_ID } from "../../infra/stacks/api-stack.ts";
import type { StrongboxStage } from "../../infra/stage.ts";
import { tenantIdSchema } from "../../shared/domain/schemas.ts";
import type { PolicyDocument } from "../../testing/iam/deployed-shape.ts";
import { PolicyEvaluator } from "../../testing/iam/policy-evaluator.ts";

// `grantRead(role, tenant)` on the API stack, as a service's own stack would call it for its role: the
// synthesized policy, then what IAM decides on it for execute-api:Invoke, evaluated by the simulator.

const ACCOUNT = "111111111111";
const REGION = "us-east-1";
const API_ID = "a1b2c3d4e5";

let policy: PolicyDocument;
let template: Template;

/** The policy's intrinsics as CloudFormation resolves them: the partition, region, account, the API's id. */
function resolve(node: unknown, apiLogicalId: string): unknown {
  if (Array.isArray(node)) return node.map((child) => resolve(child, apiLogicalId));
  if (typeof node !== "object" || node === null) return node;
  const object = node as Record<string, unknown>;
  const pseudo: Record<string, string> = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    [apiLogicalId]: API_ID,
  };
  if (typeof object.Ref === "string") {
    const value = pseudo[object.Ref];
    if (value === undefined) throw new Error(`unresolved Ref ${object.Ref}`);
    return value;
  }
  const join = object["Fn::Join"] as [string, unknown[]] | undefined;
  if (join !== undefined) return join[1].map((part) => resolve(part, apiLogicalId)).join(join[0]);
  return Object.fromEntries(
    Object.entries(object).map(([key, child]) => [key, resolve(child, apiLogicalId)]),
  );
}

beforeAll(() => {
  const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
  const stage = buildApp(app, { stages: ["dev"], env: {}, nag: false }).dev as StrongboxStage;
  const caller = new iam.Role(stage.api, "ReportingServiceRole", {
    assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
  });
  stage.api.grantRead(caller, "acme");
  template = Template.fromStack(stage.api);
  const [apiLogicalId = ""] = Object.keys(template.findResources("AWS::ApiGatewayV2::Api"));
  const policies = Object.values(template.findResources("AWS::IAM::Policy")) as {
    Properties: { PolicyDocument: PolicyDocument; Roles: { Ref: string }[] };
  }[];
  const callerPolicy = policies.find((p) =>
    p.Properties.Roles.some((r) => r.Ref.startsWith("ReportingServiceRole")),
  );
  policy = resolve(callerPolicy?.Properties.PolicyDocument, apiLogicalId) as PolicyDocument;
}, 120_000);

const route = (method: string, path: string) =>
  `arn:aws:execute-api:${REGION}:${ACCOUNT}:${API_ID}/$default/${method}${path}`;
const evaluator = new PolicyEvaluator();
const invoke = async (resource: string) =>
  (
    await evaluator.evaluate({
      principal: `arn:aws:sts::${ACCOUNT}:assumed-role/ReportingServiceRole/reporting`,
      authorization: { action: "execute-api:Invoke", resource, context: {} },
      identityPolicies: [{ name: "grantRead", policy }],
      resourcePolicy: undefined,
    })
  ).result;

describe("grantRead(role, tenant)", () => {
  it("grants execute-api:Invoke on the tenant's two read routes of the IAM route set, nothing else", () => {
    expect(policy.Statement).toEqual([
      {
        Effect: "Allow",
        Action: "execute-api:Invoke",
        Resource: [
          route("GET", `${IAM_ROUTE_PREFIX}/v1/tenants/acme/secrets`),
          route("GET", `${IAM_ROUTE_PREFIX}/v1/tenants/acme/secrets/*`),
        ],
      },
    ]);
  });

  it("lets IAM allow reading and listing that tenant's secrets", async () => {
    expect(await invoke(route("GET", "/iam/v1/tenants/acme/secrets/db-password"))).toBe("Allowed");
    expect(await invoke(route("GET", "/iam/v1/tenants/acme/secrets"))).toBe("Allowed");
  });

  it("leaves every other tenant, method and route denied", async () => {
    for (const denied of [
      route("GET", "/iam/v1/tenants/globex/secrets/db-password"),
      // A tenant whose id starts with the granted one's: the `/` after the id keeps them apart.
      route("GET", "/iam/v1/tenants/acme-prod/secrets/db-password"),
      route("PUT", "/iam/v1/tenants/acme/secrets/db-password"),
      route("DELETE", "/iam/v1/tenants/acme/secrets/db-password"),
      route("GET", "/iam/v1/tenants/acme/audit"),
      route("GET", "/iam/v1/bindings"),
      route("POST", "/iam/v1/bindings"),
    ]) {
      expect(await invoke(denied), denied).toBe("ImplicitlyDenied");
    }
  });

  it("refuses what is not a tenant id, as the service's schema does", () => {
    const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
    const stage = buildApp(app, { stages: ["dev"], env: {}, nag: false }).dev as StrongboxStage;
    const role = new iam.Role(stage.api, "R", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
    });
    for (const bad of ["*", "acme/*", "Acme", "a", "acme/secrets"]) {
      expect(() => stage.api.grantRead(role, bad)).toThrow(/not a tenant id/);
    }
    for (const sample of ["acme", "a1", "acme-prod", "-x", "x".repeat(64), "x".repeat(63), "ACME", "a_b"]) {
      expect(TENANT_ID.test(sample), sample).toBe(tenantIdSchema.safeParse(sample).success);
    }
  }, 60_000);
});
