import { randomInt } from "node:crypto";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { FunctionName } from "../../infra/bundling.ts";
import type { EnvironmentName } from "../../infra/config.ts";
import { type LocalDynamo, startLocalDynamo } from "../../shared/storage/local-dynamo.ts";
import { createTable, type Table } from "../../shared/storage/table.ts";
import { type EventBridgeEndpoint, startEventBridgeEndpoint } from "../eventbridge-endpoint.ts";
import { type KmsEndpoint, startKmsEndpoint } from "../kms-endpoint.ts";
import { type S3Endpoint, startS3Endpoint } from "../s3-endpoint.ts";
import { type SecretsManagerEndpoint, startSecretsManagerEndpoint } from "../secrets-manager-endpoint.ts";
import {
  type DeployedKey,
  type DeployedShape,
  type DeployedTable,
  deployedShape,
  type NamedPolicy,
} from "./deployed-shape.ts";
import { IamContract, type Principal } from "./iam-contract.ts";
import { type IamProxy, type ProxyMode, startIamProxy } from "./iam-proxy.ts";
import { resolveStage, uuidFor } from "./template-resolver.ts";

/**
 * One stage's AWS on loopback, as its templates deploy it: the table its template defines, in dynalite;
 * its KMS keys under their ARNs and aliases; its secrets under their ARNs, with values made as the
 * template's GenerateSecretString would; EventBridge and S3 stand-ins; and the IAM proxy in front of all of
 * them, deciding each call against the stage's policies.
 */
export interface LoopbackStage {
  readonly shape: DeployedShape;
  readonly contract: IamContract;
  readonly proxy: IamProxy;
  readonly dynamo: LocalDynamo;
  readonly kms: KmsEndpoint;
  readonly secrets: SecretsManagerEndpoint;
  readonly events: EventBridgeEndpoint;
  /** The S3 stand-in, holding the anchor bucket's objects. */
  readonly s3: S3Endpoint;
  /** The stage's table, reached straight at dynalite (no proxy): for fixtures and assertions only. */
  readonly table: Table;
  /** What the stage's secret holds; the template generates it, the test needs it for the bootstrap token. */
  secretValue(arn: string): string;
  /**
   * A function's environment: its template's `Environment.Variables`, resolved, with the loopback
   * endpoints, region and its own dummy credentials on top. `extra` adds variables the template does not
   * set (a scenario's); neither may replace a template variable.
   */
  functionEnv(name: FunctionName, extra?: Record<string, string>): Record<string, string>;
  /** Dummy credentials that sign as `label` at the proxy. */
  credentials(label: string): { accessKeyId: string; secretAccessKey: string };
  close(): Promise<void>;
}

/** The variables put on top of a template's environment; a template that sets one is refused. */
export const LOOPBACK_VARIABLES = [
  "DYNAMODB_ENDPOINT",
  "KMS_ENDPOINT",
  "SECRETS_MANAGER_ENDPOINT",
  "EVENTBRIDGE_ENDPOINT",
  "S3_ENDPOINT",
  "AWS_ENDPOINT_URL",
  "AWS_REGION",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_EC2_METADATA_DISABLED",
  "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED",
] as const;

const accessKeyId = (label: string) => `ASIAIAMCONTRACT${label.toUpperCase().replace(/[^A-Z0-9]/g, "")}`;

/** A value as Secrets Manager's GenerateSecretString would make it from the template's settings. */
function generatedSecret(settings: Record<string, unknown> | undefined): string {
  const s = settings ?? {};
  let alphabet = "";
  if (s.ExcludeLowercase !== true) alphabet += "abcdefghijklmnopqrstuvwxyz";
  if (s.ExcludeUppercase !== true) alphabet += "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  if (s.ExcludeNumbers !== true) alphabet += "0123456789";
  if (s.ExcludePunctuation !== true) alphabet += "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  if (s.IncludeSpace === true) alphabet += " ";
  const excluded = new Set(String(s.ExcludeCharacters ?? ""));
  const chars = [...alphabet].filter((c) => !excluded.has(c));
  return Array.from({ length: Number(s.PasswordLength ?? 32) }, () => chars[randomInt(chars.length)]).join(
    "",
  );
}

async function createStageTable(endpoint: string, region: string, table: DeployedTable): Promise<void> {
  const client = new DynamoDBClient({
    endpoint,
    region,
    credentials: { accessKeyId: "deploy", secretAccessKey: "deploy" },
  });
  const p = table.properties;
  await client.send(
    new CreateTableCommand({
      TableName: table.name,
      KeySchema: p.KeySchema,
      AttributeDefinitions: p.AttributeDefinitions,
      BillingMode: p.BillingMode ?? "PAY_PER_REQUEST",
      ...(p.GlobalSecondaryIndexes === undefined ? {} : { GlobalSecondaryIndexes: p.GlobalSecondaryIndexes }),
      ...(p.LocalSecondaryIndexes === undefined ? {} : { LocalSecondaryIndexes: p.LocalSecondaryIndexes }),
    }),
  );
  client.destroy();
}

export async function startLoopbackStage(
  name: EnvironmentName = "dev",
  options: {
    readonly mode?: ProxyMode;
    /** Functions reach the stand-ins straight, past the proxy: only the cold-start bench, to time start-up alone. */
    readonly direct?: boolean;
  } = {},
): Promise<LoopbackStage> {
  const shape = deployedShape(resolveStage(name));
  const { region } = shape.stage;
  const contract = new IamContract(shape);
  const [dynamo, kms, secrets, events, s3] = await Promise.all([
    startLocalDynamo(),
    startKmsEndpoint({
      keys: 0,
      at: contract.keys.map((key) => ({ arn: key.arn, usage: key.keyUsage, aliases: key.aliases })),
    }),
    startSecretsManagerEndpoint(),
    startEventBridgeEndpoint(),
    startS3Endpoint(),
  ]);
  await Promise.all(shape.tables.map((table) => createStageTable(dynamo.endpoint, region, table)));
  const values = new Map<string, string>();
  for (const secret of shape.secrets) {
    const value = generatedSecret(secret.generate);
    values.set(secret.arn, value);
    secrets.putSecret(secret.name, value, secret.arn);
  }
  const proxy = await startIamProxy({
    contract,
    mode: options.mode ?? "enforce",
    upstreams: {
      dynamodb: dynamo.endpoint,
      kms: kms.endpoint,
      secretsmanager: secrets.endpoint,
      events: events.endpoint,
      s3: s3.endpoint,
    },
  });
  for (const principal of contract.principals)
    proxy.addCredentials(accessKeyId(principal.label), principal.label);
  const [stageTable] = shape.tables;
  if (stageTable === undefined) throw new Error(`stage ${name} has no table`);

  return {
    shape,
    contract,
    proxy,
    dynamo,
    kms,
    secrets,
    events,
    s3,
    table: createTable(
      {
        endpoint: dynamo.endpoint,
        region,
        credentials: { accessKeyId: "fixture", secretAccessKey: "fixture" },
      },
      stageTable.name,
    ),
    secretValue(arn) {
      const value = values.get(arn);
      if (value === undefined) throw new Error(`the stage has no secret ${arn}`);
      return value;
    },
    functionEnv(fn, extra = {}) {
      const template = shape.functions[fn].environment;
      const loopback: Record<(typeof LOOPBACK_VARIABLES)[number], string> = {
        DYNAMODB_ENDPOINT: options.direct === true ? dynamo.endpoint : proxy.endpoint,
        KMS_ENDPOINT: options.direct === true ? kms.endpoint : proxy.endpoint,
        SECRETS_MANAGER_ENDPOINT: options.direct === true ? secrets.endpoint : proxy.endpoint,
        EVENTBRIDGE_ENDPOINT: options.direct === true ? events.endpoint : proxy.endpoint,
        S3_ENDPOINT: options.direct === true ? s3.endpoint : proxy.endpoint,
        // Any other client (Lambda Invoke, say) reaches the proxy too, through the SDK's own setting.
        AWS_ENDPOINT_URL: proxy.endpoint,
        AWS_REGION: region,
        AWS_ACCESS_KEY_ID: accessKeyId(fn),
        AWS_SECRET_ACCESS_KEY: "iam-contract",
        AWS_SESSION_TOKEN: `session-of-${fn}`,
        AWS_EC2_METADATA_DISABLED: "true",
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      };
      for (const variable of [...Object.keys(loopback), ...Object.keys(extra)]) {
        if (variable in template) {
          throw new Error(
            `${variable} is set by the ${fn} function's template; the loopback must not replace it`,
          );
        }
      }
      return { ...template, ...extra, ...loopback };
    },
    credentials(label) {
      contract.principal(label);
      return { accessKeyId: accessKeyId(label), secretAccessKey: "iam-contract" };
    },
    async close() {
      await Promise.all([
        proxy.close(),
        dynamo.close(),
        kms.close(),
        secrets.close(),
        events.close(),
        s3.close(),
      ]);
    },
  };
}

/** A principal a test adds (say, an account user), signing at the proxy with its own credentials. */
export function addPrincipal(stage: LoopbackStage, principal: Omit<Principal, "account">): Principal {
  const added = { ...principal, account: stage.shape.stage.account };
  stage.contract.addPrincipal(added);
  stage.proxy.addCredentials(accessKeyId(principal.label), principal.label);
  return added;
}

/**
 * A KMS key the stage's templates do not create, as infra would add a second KEK beside the first
 * (`grantKekUse(role, [kek, previous], ...)`): its key policy a copy of `like`'s, and every identity
 * statement that names `like` naming it too. The KEK re-wrap needs DEKs under a KEK other than the
 * active one, and the templates hold only one.
 */
export function addKeyLike(stage: LoopbackStage, like: DeployedKey, id: string): DeployedKey {
  const keyId = uuidFor(stage.shape.stage.name, id);
  const key: DeployedKey = { ...like, keyId, arn: like.arn.replace(like.keyId, keyId), aliases: [] };
  stage.contract.addKey(key);
  stage.kms.addKey(key.arn, key.keyUsage);
  const widen = (policies: readonly NamedPolicy[]): NamedPolicy[] =>
    policies.map((p) => ({
      ...p,
      policy: {
        ...p.policy,
        Statement: p.policy.Statement.map((statement) => {
          const resources = [statement.Resource].flat();
          return resources.includes(like.arn)
            ? { ...statement, Resource: [...resources, key.arn] }
            : statement;
        }),
      },
    }));
  for (const principal of stage.contract.principals) {
    stage.contract.addPrincipal({ ...principal, identityPolicies: widen(principal.identityPolicies) });
  }
  return key;
}
