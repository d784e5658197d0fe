import { CfnOutput, Duration, Stack, type StackProps } from "aws-cdk-lib";
import { AccessLogFormat } from "aws-cdk-lib/aws-apigateway";
import * as apigw from "aws-cdk-lib/aws-apigatewayv2";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "../config.ts";
import { StrongboxFunction } from "../constructs/strongbox-function.ts";
import type { DataStack } from "./data-stack.ts";
import { EVENT_SOURCES } from "./event-contract.ts";
import { grantKekUse, grantMac, grantPutEvents, grantTableItems, PARTITIONS } from "./grants.ts";

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
        BOOTSTRAP_TOKEN_SECRET_ARN: data.bootstrapSecret.secretArn,
        // The re-wrap request goes here, for the rotation function to pick up.
        EVENT_BUS_NAME: data.bus.eventBusName,
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
        PARTITIONS.breakGlass,
      ],
    });
    grantKekUse(role, [data.kek], ["GenerateDataKey", "Decrypt"]);
    grantMac(role, data.auditMacKey, ["GenerateMac"]);
    // Its re-wrap requests, and the rotation events of an on-demand run (POST /v1/rotation/run).
    grantPutEvents(role, data.bus.eventBusArn, [EVENT_SOURCES.api, EVENT_SOURCES.rotation]);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["secretsmanager:GetSecretValue"],
        resources: [data.bootstrapSecret.secretArn],
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

    this.httpApi = new apigw.HttpApi(this, "HttpApi", {
      apiName: `strongbox-${config.name}`,
      createDefaultStage: false,
      defaultIntegration: new HttpLambdaIntegration("Api", this.api.function),
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
}
