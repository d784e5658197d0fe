import { App, type Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { describe, expect, it } from "vitest";
import { buildApp, unacknowledgedFindings } from "../../infra/build.ts";
import { ENVIRONMENT_NAMES } from "../../infra/config.ts";
import { ACKNOWLEDGEMENTS } from "../../infra/nag-acknowledgements.ts";

/**
 * The findings of one synthesis. In a test run the CDK throws the validation report instead of only
 * writing it, so both ways of failing count as findings.
 */
function findings(build: (app: App) => void): string[] {
  const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
  build(app);
  try {
    return unacknowledgedFindings(app.synth().directory);
  } catch (error) {
    return [String(error)];
  }
}

describe("cdk-nag AwsSolutions", () => {
  it("finds nothing unacknowledged in any stage", () => {
    const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
    buildApp(app, { stages: ENVIRONMENT_NAMES, env: {} });
    expect(unacknowledgedFindings(app.synth().directory)).toEqual([]);
  }, 60_000);

  it.each(ENVIRONMENT_NAMES)(
    "fails on a finding nobody acknowledged in %s",
    (env) => {
      const found = findings((app) => {
        const [stage] = Object.values(buildApp(app, { stages: [env], env: {} }));
        // A queue that accepts plain HTTP: AwsSolutions-SQS4.
        new sqs.Queue(stage?.data as Stack, "UnsafeQueue", { encryption: sqs.QueueEncryption.SQS_MANAGED });
      });
      expect(found.join("\n")).toContain("AwsSolutions-SQS4");
    },
    60_000,
  );

  it.each(ACKNOWLEDGEMENTS.map((a) => [a.id, a]))(
    "still needs the acknowledgement of %s",
    (id) => {
      const found = findings((app) => {
        buildApp(app, {
          stages: ["prod"],
          env: {},
          acknowledgements: ACKNOWLEDGEMENTS.filter((a) => a.id !== id),
        });
      });
      expect(found.join("\n")).toContain(id.replace(/\[.*$/, ""));
    },
    60_000,
  );

  it("acknowledges wildcard resources only where its reason says: X-Ray's two actions, and ListStreams", () => {
    const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
    const stage = buildApp(app, { stages: ["prod"], env: {}, nag: false }).prod;
    const functionStacks = [stage?.api, stage?.rotation, stage?.audit] as Stack[];
    const onEverything = functionStacks.flatMap((stack) =>
      Object.values(Template.fromStack(stack).findResources("AWS::IAM::Policy")).flatMap((policy) =>
        (
          policy as {
            Properties: { PolicyDocument: { Statement: { Action: unknown; Resource: unknown }[] } };
          }
        ).Properties.PolicyDocument.Statement.filter(
          (s) => JSON.stringify(s.Resource).includes('"*"') || s.Resource === "*",
        ),
      ),
    );
    expect(onEverything.map((s) => s.Action)).toEqual([
      ...functionStacks.map(() => ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]),
      // The audit sequencer's event source mapping finds the table's stream with it.
      "dynamodb:ListStreams",
    ]);
  }, 60_000);

  it("gives every acknowledgement a reason", () => {
    for (const { reason } of ACKNOWLEDGEMENTS) expect(reason.length).toBeGreaterThan(60);
  });
});
