import { createHash } from "node:crypto";
import { App } from "aws-cdk-lib";
import { buildApp } from "../../infra/build.ts";
import type { EnvironmentName } from "../../infra/config.ts";
import type { StrongboxStage } from "../../infra/stage.ts";
import type { StackName } from "../infra.ts";

/**
 * The synthesized CloudFormation templates of one stage with every intrinsic resolved, as CloudFormation
 * would resolve them on a first deploy, to synthetic but realistically shaped physical ids and ARNs.
 * Names a template sets (TableName, RoleName, ...) are kept; names CloudFormation would generate are
 * derived from the stack and logical id, so they are stable from run to run.
 */
export interface ResolvedResource {
  readonly stack: StackName;
  readonly logicalId: string;
  readonly type: string;
  readonly properties: Record<string, any>;
  /** What `Ref` answers. */
  readonly ref: string;
  /** What `Fn::GetAtt` answers, by attribute name. */
  readonly attributes: Readonly<Record<string, string>>;
}

export interface ResolvedStage {
  readonly name: EnvironmentName;
  readonly account: string;
  readonly region: string;
  readonly partition: string;
  readonly stackNames: Readonly<Record<StackName, string>>;
  readonly resources: readonly ResolvedResource[];
}

export const STACKS: readonly StackName[] = ["data", "api", "rotation", "audit", "monitoring"];

type Template = {
  Resources?: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
  Outputs?: Record<string, { Value: unknown; Export?: { Name: unknown } }>;
  Parameters?: Record<string, { Default?: unknown }>;
  Conditions?: Record<string, unknown>;
  Mappings?: Record<string, Record<string, Record<string, unknown>>>;
};

const hex = (...parts: string[]) => createHash("sha256").update(parts.join("\0")).digest("hex");

/** A v4-shaped UUID derived from a name, as KMS key ids and event source mapping ids look. */
export function uuidFor(...parts: string[]): string {
  const h = hex(...parts);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
function letters(count: number, alphabet: string, ...parts: string[]): string {
  const bytes = Buffer.from(hex(...parts), "hex");
  return Array.from(
    { length: count },
    (_, n) => alphabet[(bytes[n % bytes.length] ?? 0) % alphabet.length],
  ).join("");
}

/** CloudFormation's generated names: `<stack>-<logical id>-<12 random>`, cut to the service's limit. */
function generatedName(stackName: string, logicalId: string, limit = 64): string {
  const suffix = letters(12, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", stackName, logicalId);
  const room = limit - suffix.length - 2 - stackName.length;
  return `${stackName}-${logicalId.slice(0, Math.max(room, 1))}-${suffix}`;
}

interface Physical {
  readonly ref: string;
  readonly attributes: Record<string, string>;
}

type Props = (name: string) => unknown;

/** Ref and GetAtt per resource type; a type not listed gets a generated id and a generic ARN. */
const TYPES: Record<
  string,
  (
    id: { stack: string; logicalId: string; arn: (service: string, resource: string) => string },
    prop: Props,
  ) => Physical
> = {
  "AWS::KMS::Key": ({ stack, logicalId, arn }) => {
    const keyId = uuidFor(stack, logicalId);
    return { ref: keyId, attributes: { Arn: arn("kms", `key/${keyId}`), KeyId: keyId } };
  },
  "AWS::KMS::Alias": (_id, prop) => ({ ref: String(prop("AliasName")), attributes: {} }),
  "AWS::DynamoDB::Table": ({ stack, logicalId, arn }, prop) => {
    const name = String(prop("TableName") ?? generatedName(stack, logicalId, 255));
    const tableArn = arn("dynamodb", `table/${name}`);
    return {
      ref: name,
      attributes: { Arn: tableArn, StreamArn: `${tableArn}/stream/2026-01-01T00:00:00.000` },
    };
  },
  "AWS::SecretsManager::Secret": ({ stack, logicalId, arn }, prop) => {
    const name = String(prop("Name") ?? `${logicalId}-${letters(12, ALPHANUMERIC, stack, logicalId)}`);
    const secretArn = arn(
      "secretsmanager",
      `secret:${name}-${letters(6, ALPHANUMERIC, stack, logicalId, "suffix")}`,
    );
    return { ref: secretArn, attributes: { Id: secretArn } };
  },
  "AWS::SecretsManager::ResourcePolicy": (_id, prop) => ({ ref: String(prop("SecretId")), attributes: {} }),
  "AWS::IAM::Role": ({ stack, logicalId, arn }, prop) => {
    const name = String(prop("RoleName") ?? generatedName(stack, logicalId));
    const path = String(prop("Path") ?? "/");
    return {
      ref: name,
      attributes: {
        Arn: arn("iam", `role${path}${name}`),
        RoleId: `AROA${letters(17, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", stack, logicalId)}`,
      },
    };
  },
  "AWS::IAM::ManagedPolicy": ({ stack, logicalId, arn }, prop) => {
    const name = String(prop("ManagedPolicyName") ?? generatedName(stack, logicalId, 128));
    const policyArn = arn("iam", `policy${String(prop("Path") ?? "/")}${name}`);
    return { ref: policyArn, attributes: { PolicyArn: policyArn } };
  },
  "AWS::Lambda::Function": ({ stack, logicalId, arn }, prop) => {
    const name = String(prop("FunctionName") ?? generatedName(stack, logicalId));
    return { ref: name, attributes: { Arn: arn("lambda", `function:${name}`) } };
  },
  "AWS::Logs::LogGroup": ({ stack, logicalId, arn }, prop) => {
    const name = String(prop("LogGroupName") ?? generatedName(stack, logicalId, 512));
    return { ref: name, attributes: { Arn: arn("logs", `log-group:${name}:*`) } };
  },
  "AWS::SQS::Queue": ({ stack, logicalId, arn }, prop) => {
    const fifo = prop("FifoQueue") === true;
    const name = String(
      prop("QueueName") ?? `${generatedName(stack, logicalId, fifo ? 75 : 80)}${fifo ? ".fifo" : ""}`,
    );
    const [, , , region, account] = arn("sqs", name).split(":");
    const url = `https://sqs.${region}.amazonaws.com/${account}/${name}`;
    return { ref: url, attributes: { Arn: arn("sqs", name), QueueName: name, QueueUrl: url } };
  },
  "AWS::SNS::Topic": ({ stack, logicalId, arn }, prop) => {
    const name = String(prop("TopicName") ?? generatedName(stack, logicalId, 256));
    return { ref: arn("sns", name), attributes: { TopicArn: arn("sns", name), TopicName: name } };
  },
  "AWS::Events::EventBus": ({ arn }, prop) => {
    const name = String(prop("Name"));
    return { ref: name, attributes: { Arn: arn("events", `event-bus/${name}`), Name: name } };
  },
  "AWS::Events::Rule": ({ stack, logicalId, arn }, prop) => {
    const name = String(prop("Name") ?? generatedName(stack, logicalId));
    const bus = prop("EventBusName");
    const path = bus === undefined || bus === "default" ? name : `${String(bus).split("/").pop()}/${name}`;
    return { ref: name, attributes: { Arn: arn("events", `rule/${path}`) } };
  },
  "AWS::CloudTrail::Trail": ({ stack, logicalId, arn }, prop) => {
    const name = String(prop("TrailName") ?? generatedName(stack, logicalId, 128));
    return { ref: name, attributes: { Arn: arn("cloudtrail", `trail/${name}`) } };
  },
  "AWS::S3::Bucket": ({ stack, logicalId }, prop) => {
    const name = String(prop("BucketName") ?? generatedName(stack, logicalId, 63).toLowerCase());
    return {
      ref: name,
      attributes: { Arn: `arn:aws:s3:::${name}`, DomainName: `${name}.s3.amazonaws.com` },
    };
  },
  "AWS::ApiGatewayV2::Api": ({ stack, logicalId, arn }) => {
    const apiId = letters(10, "abcdefghijklmnopqrstuvwxyz0123456789", stack, logicalId);
    const region = arn("x", "").split(":")[3];
    return {
      ref: apiId,
      attributes: { ApiId: apiId, ApiEndpoint: `https://${apiId}.execute-api.${region}.amazonaws.com` },
    };
  },
  "AWS::ApiGatewayV2::Stage": (_id, prop) => ({ ref: String(prop("StageName")), attributes: {} }),
  "AWS::CloudWatch::Alarm": ({ stack, logicalId, arn }, prop) => {
    const name = String(prop("AlarmName") ?? generatedName(stack, logicalId, 255));
    return { ref: name, attributes: { Arn: arn("cloudwatch", `alarm:${name}`) } };
  },
  "AWS::Lambda::EventSourceMapping": ({ stack, logicalId }) => ({
    ref: uuidFor(stack, logicalId),
    attributes: {},
  }),
};

const PSEUDO = (stage: { account: string; region: string; partition: string }, stackName: string) =>
  ({
    "AWS::AccountId": stage.account,
    "AWS::Region": stage.region,
    "AWS::Partition": stage.partition,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": stackName,
    "AWS::StackId": `arn:${stage.partition}:cloudformation:${stage.region}:${stage.account}:stack/${stackName}/${uuidFor(stackName)}`,
  }) as Record<string, string>;

/** Removed from lists and objects, as CloudFormation drops a property set to `AWS::NoValue`. */
const NO_VALUE = Symbol("AWS::NoValue");

class StageResolver {
  readonly #templates: Record<StackName, Template>;
  readonly #names: Record<StackName, string>;
  readonly #stage: { account: string; region: string; partition: string };
  readonly #physical = new Map<string, Physical>();
  readonly #resolving = new Set<string>();

  constructor(
    templates: Record<StackName, Template>,
    names: Record<StackName, string>,
    stage: { account: string; region: string; partition: string },
  ) {
    this.#templates = templates;
    this.#names = names;
    this.#stage = stage;
  }

  resources(): ResolvedResource[] {
    return STACKS.flatMap((stack) =>
      Object.entries(this.#templates[stack].Resources ?? {}).map(([logicalId, resource]) => {
        const physical = this.physical(stack, logicalId);
        return {
          stack,
          logicalId,
          type: resource.Type,
          properties: (this.resolve(stack, resource.Properties ?? {}) ?? {}) as Record<string, any>,
          ref: physical.ref,
          attributes: physical.attributes,
        };
      }),
    );
  }

  physical(stack: StackName, logicalId: string): Physical {
    const key = `${stack}/${logicalId}`;
    const known = this.#physical.get(key);
    if (known !== undefined) return known;
    const resource = this.#templates[stack].Resources?.[logicalId];
    if (resource === undefined) throw new Error(`${this.#names[stack]} has no resource ${logicalId}`);
    if (this.#resolving.has(key)) throw new Error(`circular reference through ${key}`);
    this.#resolving.add(key);
    const { account, region, partition } = this.#stage;
    const service = resource.Type.split("::")[1]?.toLowerCase() ?? "unknown";
    const arn = (svc: string, res: string) =>
      svc === "iam"
        ? `arn:${partition}:iam::${account}:${res}`
        : `arn:${partition}:${svc}:${region}:${account}:${res}`;
    const prop: Props = (name) => this.resolve(stack, resource.Properties?.[name]);
    const id = { stack: this.#names[stack], logicalId, arn };
    const made =
      TYPES[resource.Type]?.(id, prop) ??
      (() => {
        const name = generatedName(this.#names[stack], logicalId);
        return { ref: name, attributes: { Arn: arn(service, name) } };
      })();
    this.#resolving.delete(key);
    this.#physical.set(key, made);
    return made;
  }

  resolve(stack: StackName, value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.resolve(stack, v)).filter((v) => v !== NO_VALUE);
    if (value === null || typeof value !== "object") return value;
    const entries = Object.entries(value);
    const [first] = entries;
    if (entries.length === 1 && first !== undefined && (first[0] === "Ref" || first[0].startsWith("Fn::"))) {
      return this.#intrinsic(stack, first[0], first[1]);
    }
    return Object.fromEntries(
      entries.map(([k, v]) => [k, this.resolve(stack, v)] as const).filter(([, v]) => v !== NO_VALUE),
    );
  }

  #ref(stack: StackName, name: string): unknown {
    if (name === "AWS::NoValue") return NO_VALUE;
    const pseudo = PSEUDO(this.#stage, this.#names[stack])[name];
    if (pseudo !== undefined) return pseudo;
    const parameter = this.#templates[stack].Parameters?.[name];
    if (parameter !== undefined) return parameter.Default;
    return this.physical(stack, name).ref;
  }

  #getAtt(stack: StackName, logicalId: string, attribute: string): string {
    const value = this.physical(stack, logicalId).attributes[attribute];
    if (value === undefined) {
      throw new Error(`no synthetic value for Fn::GetAtt ${logicalId}.${attribute} in ${this.#names[stack]}`);
    }
    return value;
  }

  #import(name: string): unknown {
    for (const stack of STACKS) {
      for (const output of Object.values(this.#templates[stack].Outputs ?? {})) {
        if (output.Export !== undefined && this.resolve(stack, output.Export.Name) === name) {
          return this.resolve(stack, output.Value);
        }
      }
    }
    throw new Error(`Fn::ImportValue ${name}: no stack of the stage exports it`);
  }

  #sub(stack: StackName, template: string, variables: Record<string, unknown>): string {
    return template.replace(/\$\{(!?)([^}]+)\}/g, (_match, literal: string, name: string) => {
      if (literal === "!") return `\${${name}}`;
      if (name in variables) return String(variables[name]);
      const dot = name.indexOf(".");
      if (dot > 0 && !name.startsWith("AWS::"))
        return this.#getAtt(stack, name.slice(0, dot), name.slice(dot + 1));
      return String(this.#ref(stack, name));
    });
  }

  #condition(stack: StackName, name: string): boolean {
    const condition = this.#templates[stack].Conditions?.[name];
    if (condition === undefined) throw new Error(`unknown condition ${name}`);
    return Boolean(this.resolve(stack, condition));
  }

  #intrinsic(stack: StackName, fn: string, arg: any): unknown {
    const r = (v: unknown) => this.resolve(stack, v);
    switch (fn) {
      case "Ref":
        return this.#ref(stack, arg);
      case "Fn::GetAtt": {
        const [logicalId, attribute] =
          typeof arg === "string" ? [arg.split(".")[0], arg.split(".").slice(1).join(".")] : arg;
        return this.#getAtt(stack, logicalId, String(r(attribute)));
      }
      case "Fn::ImportValue":
        return this.#import(String(r(arg)));
      case "Fn::Join":
        return (r(arg[1]) as unknown[]).join(arg[0]);
      case "Fn::Sub":
        return typeof arg === "string"
          ? this.#sub(stack, arg, {})
          : this.#sub(stack, arg[0], (r(arg[1]) ?? {}) as Record<string, unknown>);
      case "Fn::Select":
        return (r(arg[1]) as unknown[])[Number(r(arg[0]))];
      case "Fn::Split":
        return String(r(arg[1])).split(arg[0]);
      case "Fn::Base64":
        return Buffer.from(String(r(arg))).toString("base64");
      case "Fn::GetAZs":
        return ["a", "b", "c"].map((zone) => `${this.#stage.region}${zone}`);
      case "Fn::FindInMap": {
        const [map, top, second] = (arg as unknown[]).map(r) as [string, string, string];
        return this.#templates[stack].Mappings?.[map]?.[top]?.[second];
      }
      case "Fn::If":
        return this.#condition(stack, arg[0]) ? r(arg[1]) : r(arg[2]);
      case "Fn::Equals":
        return JSON.stringify(r(arg[0])) === JSON.stringify(r(arg[1]));
      case "Fn::Not":
        return !r(arg[0]);
      case "Fn::And":
        return (arg as unknown[]).every((c) => Boolean(r(c)));
      case "Fn::Or":
        return (arg as unknown[]).some((c) => Boolean(r(c)));
      case "Condition":
        return this.#condition(stack, arg);
      default:
        throw new Error(`the template resolver does not know ${fn}; teach testing/iam/template-resolver.ts`);
    }
  }
}

const synthesized = new Map<EnvironmentName, ResolvedStage>();

/**
 * Synthesizes one stage as `npm run synth` does (cdk-nag off: it only adds metadata; bundling skipped:
 * the templates do not depend on the bundle's bytes) and resolves it. Cached per process.
 */
export function resolveStage(name: EnvironmentName): ResolvedStage {
  const cached = synthesized.get(name);
  if (cached !== undefined) return cached;
  const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
  const stage = buildApp(app, { stages: [name], env: {}, nag: false })[name] as StrongboxStage;
  const assembly = stage.synth();
  const stacks = {
    data: stage.data,
    api: stage.api,
    rotation: stage.rotation,
    audit: stage.audit,
    monitoring: stage.monitoring,
  };
  const templates = Object.fromEntries(
    STACKS.map((stack) => [stack, assembly.getStackArtifact(stacks[stack].artifactId).template as Template]),
  ) as Record<StackName, Template>;
  const stackNames = Object.fromEntries(STACKS.map((stack) => [stack, stacks[stack].stackName])) as Record<
    StackName,
    string
  >;
  const target = { account: stage.data.account, region: stage.data.region, partition: "aws" };
  const resolved: ResolvedStage = {
    name,
    ...target,
    stackNames,
    resources: new StageResolver(templates, stackNames, target).resources(),
  };
  synthesized.set(name, resolved);
  return resolved;
}
