import { resolve } from "node:path";
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { FUNCTION_BUNDLING, FUNCTION_ENTRIES, type FunctionName } from "../bundling.ts";
import type { EnvironmentConfig, EnvironmentName } from "../config.ts";

const REPOSITORY_ROOT = resolve(import.meta.dirname, "..", "..");

/**
 * The one place a function's role name is made. The keys' policies (data stack) name these roles
 * before they exist, since the function stacks depend on the data stack and a reference to the roles
 * themselves would be circular; so the construct and the key policies must agree on the name.
 */
export const functionRoleName = (environment: EnvironmentName, fn: FunctionName): string =>
  `strongbox-${environment}-${fn}`;

export interface StrongboxFunctionProps {
  readonly name: FunctionName;
  readonly config: EnvironmentConfig;
  readonly environment: Record<string, string>;
  readonly timeout?: Duration;
  readonly memorySize?: number;
  /** For asynchronous invocations (schedules): events that fail every retry land here. */
  readonly deadLetterQueue?: sqs.IQueue;
  /** Instances set aside for this function alone (and the most it may run). */
  readonly reservedConcurrentExecutions?: number;
}

/**
 * The one way a Strongbox Lambda is built: ESM on Node 22 and arm64, bundled by FUNCTION_BUNDLING with
 * source maps, X-Ray tracing, JSON logs into its own log group with the environment's retention, and a
 * role (named by functionRoleName) that starts with nothing but that log group; each stack grants the
 * rest explicitly.
 */
export class StrongboxFunction extends Construct {
  readonly function: NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: StrongboxFunctionProps) {
    super(scope, id);
    const removalPolicy = props.config.protectData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    this.logGroup = new logs.LogGroup(this, "Logs", {
      retention: props.config.logRetentionDays,
      removalPolicy,
    });
    this.role = new iam.Role(this, "Role", {
      roleName: functionRoleName(props.config.name, props.name),
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: `strongbox ${props.config.name} ${props.name} function`,
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    this.function = new NodejsFunction(this, "Function", {
      entry: resolve(REPOSITORY_ROOT, FUNCTION_ENTRIES[props.name]),
      projectRoot: REPOSITORY_ROOT,
      depsLockFilePath: resolve(REPOSITORY_ROOT, "package-lock.json"),
      handler: "handler",
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(10),
      tracing: lambda.Tracing.ACTIVE,
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      // Source maps ship with the artifact for decoding offline; they are not enabled at run time
      // (--enable-source-maps), which parsed a map of the whole SDK on every cold start, while the logs
      // never print a stack to map.
      bundling: FUNCTION_BUNDLING,
      ...(props.deadLetterQueue === undefined ? {} : { deadLetterQueue: props.deadLetterQueue }),
      ...(props.reservedConcurrentExecutions === undefined
        ? {}
        : { reservedConcurrentExecutions: props.reservedConcurrentExecutions }),
      environment: {
        ...props.environment,
        POWERTOOLS_SERVICE_NAME: "strongbox",
        STRONGBOX_ENVIRONMENT: props.config.name,
      },
    });
  }
}
