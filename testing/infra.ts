import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { buildApp } from "../infra/build.ts";
import { ENVIRONMENT_NAMES, type EnvironmentName } from "../infra/config.ts";
import type { StrongboxStage } from "../infra/stage.ts";

export type StackName = "data" | "api" | "rotation" | "audit" | "monitoring";
export type Templates = Record<EnvironmentName, Record<StackName, Template>>;

/**
 * All three stages, synthesized once. Bundling is skipped (`aws:cdk:bundling-stacks: []`): the templates
 * do not depend on the bundle's bytes, and test/infra/bundles.test.ts builds and runs the real bundles.
 */
export function synthesizeAll(): {
  app: App;
  stages: Record<EnvironmentName, StrongboxStage>;
  templates: Templates;
} {
  const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
  const stages = buildApp(app, { stages: ENVIRONMENT_NAMES, env: {} }) as Record<
    EnvironmentName,
    StrongboxStage
  >;
  const templates = Object.fromEntries(
    ENVIRONMENT_NAMES.map((name) => {
      const stage = stages[name];
      return [
        name,
        {
          data: Template.fromStack(stage.data),
          api: Template.fromStack(stage.api),
          rotation: Template.fromStack(stage.rotation),
          audit: Template.fromStack(stage.audit),
          monitoring: Template.fromStack(stage.monitoring),
        },
      ];
    }),
  ) as Templates;
  return { app, stages, templates };
}

export interface Statement {
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
  readonly Condition?: Record<string, Record<string, unknown>>;
}

export const actionsOf = (statement: Statement): string[] =>
  Array.isArray(statement.Action) ? statement.Action : [statement.Action];

/** Every statement of every identity policy in the template (each function stack has one role). */
export function roleStatements(template: Template): Statement[] {
  return Object.values(template.findResources("AWS::IAM::Policy")).flatMap(
    (policy) =>
      (policy as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
}
