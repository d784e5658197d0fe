import { CfnOutput, Duration, Stack, type StackProps } from "aws-cdk-lib";
import { AccessLogFormat } from "aws-cdk-lib/aws-apigateway";
import * as apigw from "aws-cdk-lib/aws-apigatewayv2";
import { HttpIamAuthorizer } from "aws-cdk-lib/aws-apigatewayv2-authorizers";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "../config.ts";
import { StrongboxFunction } from "../constructs/strongbox-function.ts";
import { auditAnchorBucketName, type DataStack } from "./data-stack.ts";
import { EVENT_SOURCES } from "./event-contract.ts";
import {
  grantAnchorRead,
  grantAuditQueueBatchWrites,
  grantItemDeletes,
  grantKekUse,
  grantMac,
  grantPutEvents,
  grantTableItems,
  grantVerifierInvoke,
  PARTITIONS,
} from "./grants.ts";

export interface ApiStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly data: DataStack;
}

export class ApiStack extends Stack {
  readonly api: StrongboxFunction;
  readonly httpApi: apigw.HttpApi;
  readonly stage: apigw.HttpStage;

  constructor(scope: Construct, id: string, props: ApiStackProps) {
    super(scope, id, props);
    const { config, data } = props;

    this.api = new StrongboxFunction(this, "ApiFunction", {
      name: "api",
      config,
      // The on-demand rotation routes work for up to 20 s (functions/api/http.ts); HTTP APIs wait 30 s.
      timeout: Duration.seconds(29),
      environment: {
        TABLE_NAME: data.table.tableName,
        KMS_KEY_ID: data.kek.keyArn,
        AUDIT_MAC_KEY_ID: data.auditMacKey.keyArn,
        // The verify routes read the chains' anchors here; the audit function writes them.
        AUDIT_ANCHOR_BUCKET: auditAnchorBucketName(this, config),
        BOOTSTRAP_TOKEN_SECRET_ARN: data.bootstrapSecret.secretArn,
        // The re-wrap request goes here, for the rotation function to pick up.
        EVENT_BUS_NAME: data.bus.eventBusName,
        // The on-demand and the scheduled run rotate DEKs past the same period.
        DEK_ROTATION_PERIOD_DAYS: String(config.dekRotationPeriodDays),
        NODE_ENV: "production",
        UNSEAL_REQUIRES_SECOND_ADMIN: String(config.unsealRequiresSecondAdmin),
      },
    });
    const role = this.api.role;
    // Every partition: secrets and tenants (T#), tokens, audit blocks, the tenant directory, and the
    // META checkpoints and KEK registry that tenant creation and the on-demand rotation routes keep.
    grantTableItems(role, data.table.tableArn, {
      read: ["GetItem", "BatchGetItem", "Query"],
      write: ["PutItem", "UpdateItem"],
      writePartitions: [
        PARTITIONS.tenant,
        PARTITIONS.token,
        PARTITIONS.audit,
        PARTITIONS.directory,
        PARTITIONS.meta,
        PARTITIONS.seal,
        PARTITIONS.tokenDirectory,
        PARTITIONS.wrap,
        PARTITIONS.wrapDirectory,
        PARTITIONS.breakGlass,
        PARTITIONS.breakGlassDirectory,
        PARTITIONS.binding,
      ],
    });
    grantItemDeletes(role, data.table.tableArn, [PARTITIONS.tenant]);
    grantVerifierInvoke(role, this, config.verifierFunctionNamePrefix);
    // A read of the audit trail first chains what waits in that scope's queue.
    grantAuditQueueBatchWrites(role, data.table.tableArn);
    grantKekUse(role, [data.kek], ["GenerateDataKey", "Decrypt"]);
    grantMac(role, data.auditMacKey, ["GenerateMac"]);
    grantAnchorRead(role, `arn:${this.partition}:s3:::${auditAnchorBucketName(this, config)}`);
    // Its re-wrap requests, and the rotation events of an on-demand run (POST /v1/rotation/run).
    grantPutEvents(role, data.bus.eventBusArn, [EVENT_SOURCES.api, EVENT_SOURCES.rotation]);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["secretsmanager:GetSecretValue"],
        resources: [data.bootstrapSecret.secretArn],
      }),
    );
    // CredentialRefs: only secrets under the configured name prefix (Secrets Manager appends six
    // characters to a secret's name in its ARN, hence the trailing wildcard).
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
        resources: [
          `arn:${this.partition}:secretsmanager:${this.region}:${this.account}:secret:${config.referencedSecretNamePrefix}*`,
        ],
      }),
    );
    // The secret's key policy trusts this role through IAM (key-policies.ts), so IAM must say so too.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["kms:Decrypt"],
        resources: [data.bootstrapSecretKey.keyArn],
        conditions: { StringEquals: { "kms:ViaService": `secretsmanager.${this.region}.amazonaws.com` } },
      }),
    );

    const integration = new HttpLambdaIntegration("Api", this.api.function);
    this.httpApi = new apigw.HttpApi(this, "HttpApi", {
      apiName: `strongbox-${config.name}`,
      createDefaultStage: false,
      defaultIntegration: integration,
    });
    // The IAM route set (docs/api.md#iam-callers): API Gateway verifies the caller's SigV4 signature and
    // IAM policy (execute-api:Invoke on the route's ARN) and hands the function the principal; the
    // function maps it to a role and tenants through its binding. A route takes one authorizer, so the
    // bearer routes (the default route, authenticated in the function) and these are two sets.
    this.httpApi.addRoutes({
      path: `${IAM_ROUTE_PREFIX}/{proxy+}`,
      methods: [apigw.HttpMethod.ANY],
      integration,
      authorizer: new HttpIamAuthorizer(),
    });
    const accessLogs = new logs.LogGroup(this, "AccessLogs", { retention: config.logRetentionDays });
    this.stage = new apigw.HttpStage(this, "DefaultStage", {
      httpApi: this.httpApi,
      stageName: "$default",
      autoDeploy: true,
      throttle: config.api,
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(accessLogs),
        // Identifiers and outcomes only: headers (the bearer token) and bodies (secret values) never, nor
        // the path, which names tenants and secrets; the API function's own line for the same
        // requestId names the route pattern.
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: "$context.requestId",
            time: "$context.requestTime",
            method: "$context.httpMethod",
            status: "$context.status",
            latencyMs: "$context.responseLatency",
            integrationError: "$context.integrationErrorMessage",
            sourceIp: "$context.identity.sourceIp",
          }),
        ),
      },
    });
    new CfnOutput(this, "Url", { value: this.stage.url, description: "the API base URL" });
  }

  /**
   * The execute-api ARNs of one tenant's read routes on the IAM route set: list its secrets, read one
   * (any version or stage: those are query parameters, which an ARN does not name).
   */
  readRouteArns(tenant: string): string[] {
    if (!TENANT_ID.test(tenant)) throw new Error(`grantRead: ${tenant} is not a tenant id`);
    const route = (path: string) =>
      this.formatArn({
        service: "execute-api",
        resource: this.httpApi.apiId,
        resourceName: `${this.stage.stageName}/GET${IAM_ROUTE_PREFIX}/v1/tenants/${tenant}${path}`,
      });
    return [route("/secrets"), route("/secrets/*")];
  }

  /**
   * Lets `grantee` call the tenant's read routes through API Gateway (execute-api:Invoke). That is the
   * outer gate only: the function also needs a binding for the principal, with a role that may read
   * and this tenant in its scope (POST /v1/bindings).
   */
  grantRead(grantee: iam.IGrantable, tenant: string): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ["execute-api:Invoke"],
      resourceArns: this.readRouteArns(tenant),
    });
  }
}

/** Every `/v1` route is served under this prefix too, behind IAM authorization (functions/api/credentials.ts). */
export const IAM_ROUTE_PREFIX = "/iam";
/** As shared/domain/schemas.ts tenantIdSchema (infra imports no shared code; stacks.test.ts holds them together). */
export const TENANT_ID = /^[a-z0-9][a-z0-9-]{1,62}$/;
