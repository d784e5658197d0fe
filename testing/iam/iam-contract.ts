import type { FunctionName } from "../../infra/bundling.ts";
import { ciphertextKeyId } from "../kms-endpoint.ts";
import type { Directory, Service } from "./aws-requests.ts";
import type { DeployedKey, DeployedShape, NamedPolicy, PolicyDocument } from "./deployed-shape.ts";
import { type Authorization, type Decision, PolicyEvaluator } from "./policy-evaluator.ts";
import { uuidFor } from "./template-resolver.ts";

/** Who signs a request: a function's role session, or any other principal a test adds. */
export interface Principal {
  /** `api`, `rotation`, `audit`, or a test's own name such as `poweruser`. */
  readonly label: string;
  readonly arn: string;
  /** For a role session, the role; `aws:PrincipalArn` and key policies name the role, not the session. */
  readonly roleArn?: string;
  readonly account: string;
  readonly identityPolicies: readonly NamedPolicy[];
}

/** One authorization as recorded: who, what, on what, with which context, and the decision. */
export interface RecordedCall {
  readonly principal: string;
  readonly service: Service | "unknown";
  readonly operation: string;
  readonly action: string;
  readonly resource: string;
  readonly context: Readonly<Record<string, string | readonly string[]>>;
  readonly via?: string;
  readonly allowed: boolean;
  readonly result: Decision["result"];
  readonly reason: string;
}

/**
 * The policy of `aws/secretsmanager`, the AWS managed key a secret without `KmsKeyId` is encrypted
 * under, as AWS documents it: any principal of the account, through Secrets Manager only.
 */
function secretsManagerManagedKey(account: string, region: string, partition: string): DeployedKey {
  const keyId = uuidFor("aws/secretsmanager", account, region);
  const through = {
    "kms:CallerAccount": account,
    "kms:ViaService": `secretsmanager.${region}.amazonaws.com`,
  };
  return {
    arn: `arn:${partition}:kms:${region}:${account}:key/${keyId}`,
    keyId,
    aliases: ["alias/aws/secretsmanager"],
    keySpec: "SYMMETRIC_DEFAULT",
    keyUsage: "ENCRYPT_DECRYPT",
    policy: {
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { AWS: "*" },
          Action: ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:CreateGrant", "kms:DescribeKey"],
          Resource: "*",
          Condition: { StringEquals: through },
        },
        {
          Effect: "Allow",
          Principal: { AWS: "*" },
          Action: "kms:GenerateDataKey*",
          Resource: "*",
          Condition: {
            StringEquals: { "kms:CallerAccount": account },
            StringLike: { "kms:ViaService": through["kms:ViaService"] },
          },
        },
        {
          Effect: "Allow",
          Principal: { AWS: `arn:${partition}:iam::${account}:root` },
          Action: ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
          Resource: "*",
        },
      ],
    },
  };
}

/**
 * The stage's policies as the IAM contract evaluates them: each function's identity policies, the key
 * policies, and the resource policies of secrets, tables, buses and buckets, all from the resolved templates.
 * Tests may add principals (an account user with `kms:*`) and keys the stage does not create (a
 * previous KEK), and derive a copy with one grant removed.
 */
export class IamContract {
  readonly shape: DeployedShape;
  readonly evaluator: PolicyEvaluator;
  readonly directory: Directory;
  readonly #principals = new Map<string, Principal>();
  readonly #keys: DeployedKey[];

  constructor(
    shape: DeployedShape,
    options: {
      evaluator?: PolicyEvaluator;
      keys?: readonly DeployedKey[];
      principals?: readonly Principal[];
    } = {},
  ) {
    this.shape = shape;
    this.evaluator = options.evaluator ?? new PolicyEvaluator();
    const { account, region, partition } = shape.stage;
    this.#keys =
      options.keys === undefined
        ? [...shape.keys, secretsManagerManagedKey(account, region, partition)]
        : [...options.keys];
    for (const principal of options.principals ?? this.#functionPrincipals())
      this.#principals.set(principal.label, principal);
    this.directory = this.#makeDirectory();
  }

  #functionPrincipals(): Principal[] {
    return Object.values(this.shape.functions).map((fn) => ({
      label: fn.name,
      arn: fn.sessionArn,
      roleArn: fn.roleArn,
      account: this.shape.stage.account,
      identityPolicies: fn.identityPolicies,
    }));
  }

  get keys(): readonly DeployedKey[] {
    return this.#keys;
  }

  principal(label: string): Principal {
    const found = this.#principals.get(label);
    if (found === undefined) throw new Error(`no principal ${label}`);
    return found;
  }

  get principals(): readonly Principal[] {
    return [...this.#principals.values()];
  }

  addPrincipal(principal: Principal): void {
    this.#principals.set(principal.label, principal);
  }

  addKey(key: DeployedKey): void {
    this.#keys.push(key);
  }

  /** A copy whose principals' identity policies are rewritten; decisions share this contract's cache. */
  withIdentityPolicies(change: (principal: Principal) => readonly NamedPolicy[]): IamContract {
    return new IamContract(this.shape, {
      evaluator: this.evaluator,
      keys: this.#keys,
      principals: this.principals.map((p) => ({ ...p, identityPolicies: change(p) })),
    });
  }

  resourcePolicy(arn: string): PolicyDocument | undefined {
    const key = this.#keys.find((k) => k.arn === arn);
    if (key !== undefined) return key.policy;
    const secret = this.shape.secrets.find((s) => s.arn === arn);
    if (secret !== undefined) return secret.policy;
    const table = this.shape.tables.find((t) => arn === t.arn || arn.startsWith(`${t.arn}/`));
    if (table !== undefined) return table.policy;
    const bucket = this.shape.buckets.find((b) => arn === b.arn || arn.startsWith(`${b.arn}/`));
    if (bucket !== undefined) return bucket.policy;
    return this.shape.buses.find((b) => b.arn === arn)?.policy;
  }

  /** The global keys AWS puts in every request's context for this principal. */
  principalContext(principal: Principal): Record<string, string> {
    return {
      "aws:PrincipalArn": principal.roleArn ?? principal.arn,
      "aws:PrincipalAccount": principal.account,
      "aws:PrincipalType": principal.roleArn === undefined ? "User" : "AssumedRole",
      "aws:PrincipalIsAWSService": "false",
      "aws:RequestedRegion": this.shape.stage.region,
      "aws:SecureTransport": "true",
    };
  }

  authorize(principal: Principal, authorization: Authorization): Promise<Decision> {
    return this.evaluator.evaluate({
      principal: principal.arn,
      authorization: {
        ...authorization,
        context: { ...this.principalContext(principal), ...authorization.context },
      },
      identityPolicies: principal.identityPolicies,
      resourcePolicy: this.resourcePolicy(authorization.resource),
    });
  }

  /** Each recorded call decided again under this contract's policies (the teeth of the test). */
  async reevaluate(calls: readonly RecordedCall[]): Promise<RecordedCall[]> {
    return Promise.all(
      calls.map(async (call) => {
        const decision = await this.authorize(this.principal(call.principal), {
          action: call.action,
          resource: call.resource,
          context: call.context,
          ...(call.via === undefined ? {} : { via: call.via }),
        });
        return { ...call, allowed: decision.allowed, result: decision.result, reason: decision.reason };
      }),
    );
  }

  #makeDirectory(): Directory {
    const { account, region, partition } = this.shape.stage;
    const arn = (service: string, resource: string) =>
      `arn:${partition}:${service}:${region}:${account}:${resource}`;
    const keyArn = (keyId: string): string => {
      const local = keyId.replace(/^arn:[^:]+:kms:[^:]*:[^:]*:/, "");
      const key = this.#keys.find(
        (k) =>
          k.arn === keyId || k.keyId === local || `key/${k.keyId}` === local || k.aliases.includes(local),
      );
      if (key !== undefined) return key.arn;
      return keyId.startsWith("arn:")
        ? keyId
        : arn("kms", local.startsWith("alias/") ? local : `key/${local}`);
    };
    return {
      account,
      region,
      partition,
      partitionKeyOf: (name) => this.shape.tables.find((t) => t.name === name)?.partitionKey ?? "pk",
      keyArn,
      keyOfCiphertext: ciphertextKeyId,
      keyFacts: (keyArnValue) => this.#keys.find((k) => k.arn === keyArnValue),
      secretArn: (id) => {
        const secret = this.shape.secrets.find(
          (s) => s.arn === id || s.name === id || s.arn.slice(0, -7) === id,
        );
        return secret?.arn ?? (id.startsWith("arn:") ? id : arn("secretsmanager", `secret:${id}`));
      },
      secretKeyArn: (secretArn) => {
        const kmsKeyId = this.shape.secrets.find((s) => s.arn === secretArn)?.kmsKeyId;
        return keyArn(kmsKeyId ?? "alias/aws/secretsmanager");
      },
      busArn: (name) => (name.startsWith("arn:") ? name : arn("events", `event-bus/${name}`)),
      functionArn: (name) => {
        if (name.startsWith("arn:")) return name.replace(/:(\$LATEST|\d+)$/, "");
        const fn = Object.values(this.shape.functions).find((f) => f.functionName === name);
        return arn("lambda", `function:${fn?.functionName ?? name}`);
      },
    };
  }
}

export const FUNCTION_LABELS: readonly FunctionName[] = ["api", "rotation", "audit"];
