import type { FunctionName } from "../../infra/bundling.ts";
import type { ResolvedResource, ResolvedStage } from "./template-resolver.ts";

/** An IAM policy document as the templates carry it. */
export interface PolicyDocument {
  readonly Version?: string;
  readonly Statement: readonly Record<string, any>[];
}

export interface NamedPolicy {
  readonly name: string;
  readonly policy: PolicyDocument;
}

/** What a deployed function is: who it calls AWS as, with which policies, and with what environment. */
export interface DeployedFunction {
  readonly name: FunctionName;
  readonly functionName: string;
  readonly roleArn: string;
  readonly roleName: string;
  /** The role session a Lambda invocation calls AWS with: `assumed-role/<role>/<function>`. */
  readonly sessionArn: string;
  readonly identityPolicies: readonly NamedPolicy[];
  /** `Environment.Variables`, resolved. */
  readonly environment: Readonly<Record<string, string>>;
}

export interface DeployedKey {
  readonly arn: string;
  readonly keyId: string;
  readonly aliases: readonly string[];
  readonly keySpec: string;
  readonly keyUsage: "ENCRYPT_DECRYPT" | "GENERATE_VERIFY_MAC";
  readonly policy: PolicyDocument;
}

export interface DeployedSecret {
  readonly arn: string;
  readonly name: string;
  /** The key the secret is encrypted under, as the template names it; unset means `aws/secretsmanager`. */
  readonly kmsKeyId?: string;
  readonly generate?: Record<string, unknown>;
  readonly policy?: PolicyDocument;
}

export interface DeployedTable {
  readonly arn: string;
  readonly name: string;
  readonly partitionKey: string;
  readonly properties: Record<string, any>;
  readonly policy?: PolicyDocument;
}

export interface DeployedBus {
  readonly arn: string;
  readonly name: string;
  readonly policy?: PolicyDocument;
}

export interface DeployedBucket {
  readonly arn: string;
  readonly name: string;
  readonly policy?: PolicyDocument;
}

/** Everything the IAM contract needs to know about one stage, read from its resolved templates. */
export interface DeployedShape {
  readonly stage: ResolvedStage;
  readonly functions: Readonly<Record<FunctionName, DeployedFunction>>;
  readonly keys: readonly DeployedKey[];
  readonly secrets: readonly DeployedSecret[];
  readonly tables: readonly DeployedTable[];
  /** The stage's own buses and the account's `default` bus, which always exists. */
  readonly buses: readonly DeployedBus[];
  readonly buckets: readonly DeployedBucket[];
}

const FUNCTION_STACKS: Record<FunctionName, "api" | "rotation" | "audit"> = {
  api: "api",
  rotation: "rotation",
  audit: "audit",
};

const asPolicy = (value: unknown): PolicyDocument =>
  (typeof value === "string" ? JSON.parse(value) : value) as PolicyDocument;

const ofType = (stage: ResolvedStage, type: string) => stage.resources.filter((r) => r.type === type);

function deployedFunction(stage: ResolvedStage, name: FunctionName): DeployedFunction {
  // The service's function is the one the house construct built: it always sets STRONGBOX_ENVIRONMENT.
  const candidates = ofType(stage, "AWS::Lambda::Function").filter(
    (r) => r.stack === FUNCTION_STACKS[name] && r.properties.Environment?.Variables?.STRONGBOX_ENVIRONMENT,
  );
  if (candidates.length !== 1) {
    throw new Error(
      `expected one ${name} function in ${stage.stackNames[FUNCTION_STACKS[name]]}, found ${candidates.length}`,
    );
  }
  const fn = candidates[0] as ResolvedResource;
  const roleArn = String(fn.properties.Role);
  const role = ofType(stage, "AWS::IAM::Role").find((r) => r.attributes.Arn === roleArn);
  if (role === undefined) throw new Error(`the ${name} function's role ${roleArn} is not in the stage`);
  const inline = ((role.properties.Policies ?? []) as { PolicyName: string; PolicyDocument: unknown }[]).map(
    (p) => ({
      name: p.PolicyName,
      policy: asPolicy(p.PolicyDocument),
    }),
  );
  const attached = [...ofType(stage, "AWS::IAM::Policy"), ...ofType(stage, "AWS::IAM::ManagedPolicy")]
    .filter((p) => ((p.properties.Roles ?? []) as string[]).includes(role.ref))
    .map((p) => ({
      name: String(p.properties.PolicyName ?? p.ref),
      policy: asPolicy(p.properties.PolicyDocument),
    }));
  const managed = ((role.properties.ManagedPolicyArns ?? []) as string[]).map((arn) => {
    const local = ofType(stage, "AWS::IAM::ManagedPolicy").find((p) => p.ref === arn);
    // An AWS managed policy's document is not in the templates; evaluating without it would be a guess.
    if (local === undefined)
      throw new Error(`${name} role attaches ${arn}, whose document the templates do not hold`);
    return { name: arn, policy: asPolicy(local.properties.PolicyDocument) };
  });
  const variables = (fn.properties.Environment?.Variables ?? {}) as Record<string, unknown>;
  return {
    name,
    functionName: fn.ref,
    roleArn,
    roleName: role.ref,
    sessionArn: `arn:${stage.partition}:sts::${stage.account}:assumed-role/${role.ref}/${fn.ref}`,
    identityPolicies: [...inline, ...attached, ...managed],
    environment: Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, String(v)])),
  };
}

export function deployedShape(stage: ResolvedStage): DeployedShape {
  const keys = ofType(stage, "AWS::KMS::Key").map((key): DeployedKey => {
    const arn = key.attributes.Arn as string;
    return {
      arn,
      keyId: key.ref,
      aliases: ofType(stage, "AWS::KMS::Alias")
        .filter((alias) => [arn, key.ref].includes(String(alias.properties.TargetKeyId)))
        .map((alias) => String(alias.properties.AliasName)),
      keySpec: String(key.properties.KeySpec ?? "SYMMETRIC_DEFAULT"),
      keyUsage: key.properties.KeyUsage === "GENERATE_VERIFY_MAC" ? "GENERATE_VERIFY_MAC" : "ENCRYPT_DECRYPT",
      policy: asPolicy(key.properties.KeyPolicy),
    };
  });
  const secretPolicies = ofType(stage, "AWS::SecretsManager::ResourcePolicy");
  const secrets = ofType(stage, "AWS::SecretsManager::Secret").map((secret): DeployedSecret => {
    const policy = secretPolicies.find((p) => p.properties.SecretId === secret.ref);
    return {
      arn: secret.ref,
      name: String(secret.properties.Name ?? secret.ref.split(":").pop()),
      ...(secret.properties.KmsKeyId === undefined ? {} : { kmsKeyId: String(secret.properties.KmsKeyId) }),
      ...(secret.properties.GenerateSecretString === undefined
        ? {}
        : { generate: secret.properties.GenerateSecretString as Record<string, unknown> }),
      ...(policy === undefined ? {} : { policy: asPolicy(policy.properties.ResourcePolicy) }),
    };
  });
  const tables = ofType(stage, "AWS::DynamoDB::Table").map((table): DeployedTable => {
    const schema = (table.properties.KeySchema ?? []) as { AttributeName: string; KeyType: string }[];
    const policy = table.properties.ResourcePolicy?.PolicyDocument;
    return {
      arn: table.attributes.Arn as string,
      name: table.ref,
      partitionKey: schema.find((k) => k.KeyType === "HASH")?.AttributeName ?? "pk",
      properties: table.properties,
      ...(policy === undefined ? {} : { policy: asPolicy(policy) }),
    };
  });
  const busPolicies = ofType(stage, "AWS::Events::EventBusPolicy");
  const busPolicy = (name: string, own?: unknown): PolicyDocument | undefined => {
    const statements = [
      ...(own === undefined ? [] : asPolicy(own).Statement),
      ...busPolicies
        .filter((p) => (p.properties.EventBusName ?? "default") === name)
        .flatMap((p) => (p.properties.Statement === undefined ? [] : [p.properties.Statement])),
    ];
    return statements.length === 0 ? undefined : { Version: "2012-10-17", Statement: statements };
  };
  const ownBuses = ofType(stage, "AWS::Events::EventBus").map((bus): DeployedBus => {
    const policy = busPolicy(bus.ref, bus.properties.Policy);
    return { arn: bus.attributes.Arn as string, name: bus.ref, ...(policy === undefined ? {} : { policy }) };
  });
  const defaultPolicy = busPolicy("default");
  const buses = [
    ...ownBuses,
    {
      arn: `arn:${stage.partition}:events:${stage.region}:${stage.account}:event-bus/default`,
      name: "default",
      ...(defaultPolicy === undefined ? {} : { policy: defaultPolicy }),
    },
  ];
  const bucketPolicies = ofType(stage, "AWS::S3::BucketPolicy");
  const buckets = ofType(stage, "AWS::S3::Bucket").map((bucket): DeployedBucket => {
    const policy = bucketPolicies.find((p) => p.properties.Bucket === bucket.ref);
    return {
      arn: bucket.attributes.Arn as string,
      name: bucket.ref,
      ...(policy === undefined ? {} : { policy: asPolicy(policy.properties.PolicyDocument) }),
    };
  });
  return {
    stage,
    buckets,
    functions: {
      api: deployedFunction(stage, "api"),
      rotation: deployedFunction(stage, "rotation"),
      audit: deployedFunction(stage, "audit"),
    },
    keys,
    secrets,
    tables,
    buses,
  };
}
