import { createHash } from "node:crypto";
import { createValidatedPolicy, validateResourcePolicy } from "@cloud-copilot/iam-policy";
import {
  isConditionKeyArray,
  runSimulation,
  runUnsafeSimulation,
  type Simulation,
  typeForContextKey,
} from "@cloud-copilot/iam-simulate";
import type { NamedPolicy, PolicyDocument } from "./deployed-shape.ts";

/**
 * One authorization AWS makes for a request: an action on a resource, with the request context its
 * conditions read. A request can need several (ReEncrypt: ReEncryptFrom and ReEncryptTo; a batch: one
 * per table).
 */
export interface Authorization {
  readonly action: string;
  readonly resource: string;
  readonly context: Readonly<Record<string, string | readonly string[]>>;
  /** Set when a service makes the call on the caller's behalf, e.g. Secrets Manager decrypting with KMS. */
  readonly via?: string;
}

export interface EvaluationRequest {
  /** The calling principal: a role session, an IAM user, ... */
  readonly principal: string;
  readonly authorization: Authorization;
  readonly identityPolicies: readonly NamedPolicy[];
  readonly resourcePolicy: PolicyDocument | undefined;
}

export type Result = "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied";

export interface Decision {
  readonly allowed: boolean;
  readonly result: Result | "SimulationError";
  /** AWS's wording after "because" / "with" in an AccessDenied message, or the simulator's error. */
  readonly reason: string;
}

const ALLOW_ALL: NamedPolicy = {
  name: "allow-all",
  policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] },
};

const types = new Map<string, Promise<unknown>>();
const typeOf = (key: string) => {
  let known = types.get(key);
  if (known === undefined) {
    known = typeForContextKey(key);
    types.set(key, known);
  }
  return known;
};

const fingerprints = new WeakMap<object, string>();
function fingerprint(value: object | undefined): string {
  if (value === undefined) return "-";
  let known = fingerprints.get(value);
  if (known === undefined) {
    known = createHash("sha256").update(JSON.stringify(value)).digest("hex");
    fingerprints.set(value, known);
  }
  return known;
}

const accountOf = (arn: string) => arn.split(":")[4] ?? "";
const isKmsKey = (arn: string) => /^arn:[^:]+:kms:[^:]*:[^:]*:key\//.test(arn);
const ENCRYPTION_CONTEXT = "kms:encryptioncontext:";

/**
 * Every statement is evaluated by @cloud-copilot/iam-simulate; this class only prepares its input and
 * caches its answers per identical request.
 *
 * KMS key policies: the simulator models KMS's rule itself (checked in test/unit/iam-evaluator.test.ts).
 * A key policy statement that names the principal allows on its own; one that names the account
 * (`:root`) only delegates to IAM, so the identity policy must allow too; an identity policy never
 * suffices alone, and a key the stage holds no policy for allows nobody.
 *
 * What this class works around: `runSimulation` (0.1.173) keeps only context keys it can match to the
 * action, and it matches variable keys only at a `/` (`aws:PrincipalTag/x`), so it drops every
 * `kms:EncryptionContext:<key>` as "not applicable", and each condition on the encryption context would
 * see it absent. So `runSimulation` validates the request (policies, action, ARN) and reports which keys
 * do not apply; the decision comes from `runUnsafeSimulation` on the same context less those keys, with
 * the encryption-context keys put back wherever `kms:EncryptionContextKeys` applies, and each value
 * shaped (string or list) by the simulator's own key types.
 */
export class PolicyEvaluator {
  readonly #cache = new Map<string, Promise<Decision>>();
  /** Distinct requests simulated, for the suite's cost. */
  simulations = 0;

  evaluate(request: EvaluationRequest): Promise<Decision> {
    const { authorization: auth } = request;
    const key = JSON.stringify([
      request.principal,
      auth.action,
      auth.resource,
      Object.entries(auth.context).sort(([a], [b]) => (a < b ? -1 : 1)),
      request.identityPolicies.map((p) => fingerprint(p.policy)),
      fingerprint(request.resourcePolicy),
    ]);
    let decision = this.#cache.get(key);
    if (decision === undefined) {
      this.simulations++;
      decision = this.#decide(request);
      this.#cache.set(key, decision);
    }
    return decision;
  }

  async #decide(request: EvaluationRequest): Promise<Decision> {
    const { authorization: auth } = request;
    if (isKmsKey(auth.resource) && request.resourcePolicy === undefined) {
      // Every KMS key has a key policy; one the stage does not hold is not one of its keys.
      return {
        allowed: false,
        result: "ImplicitlyDenied",
        reason: `because no resource-based policy allows the ${auth.action} action (the stage holds no such key)`,
      };
    }
    const simulation: Simulation = {
      request: {
        principal: request.principal,
        action: auth.action,
        // An S3 ARN names no account: the stage's buckets are the caller's account's.
        resource: {
          resource: auth.resource,
          accountId: accountOf(auth.resource) || accountOf(request.principal),
        },
        contextVariables: Object.fromEntries(
          Object.entries(auth.context).map(([k, v]) => [k, typeof v === "string" ? v : [...v]]),
        ),
      },
      identityPolicies: request.identityPolicies.map((p) => ({ name: p.name, policy: p.policy })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(request.resourcePolicy === undefined ? {} : { resourcePolicy: request.resourcePolicy }),
    };
    const checked = await runSimulation(simulation, {});
    if (checked.resultType === "error") {
      return {
        allowed: false,
        result: "SimulationError",
        reason: `the simulator refused the request: ${checked.errors.message}`,
      };
    }
    const ignored = new Set(
      (checked.resultType === "single"
        ? checked.result.ignoredContextKeys
        : checked.results[0]?.ignoredContextKeys) ?? [],
    );
    const contextKeysApply =
      !ignored.has("kms:EncryptionContextKeys") && "kms:EncryptionContextKeys" in auth.context;
    const context: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(auth.context)) {
      const encryptionContext = name.toLowerCase().startsWith(ENCRYPTION_CONTEXT);
      if (ignored.has(name) && !(encryptionContext && contextKeysApply)) continue;
      const list = isConditionKeyArray(
        (await typeOf(encryptionContext ? "kms:EncryptionContext:x" : name)) as never,
      );
      context[name] = list ? [value].flat() : typeof value === "string" ? value : (value[0] ?? "");
    }
    const run = (identityPolicies: readonly NamedPolicy[]) =>
      runUnsafeSimulation(
        {
          ...simulation,
          request: { ...simulation.request, contextVariables: context },
          identityPolicies: identityPolicies.map((p) => ({ name: p.name, policy: p.policy })),
          ...(request.resourcePolicy === undefined
            ? {}
            : {
                // A validated policy carries its name, which the unsafe path needs for its analysis.
                resourcePolicy: createValidatedPolicy(request.resourcePolicy, validateResourcePolicy, {
                  name: "ResourcePolicy",
                }),
              }),
        },
        {},
      ) as Result;
    const result = run(request.identityPolicies);
    if (result === "Allowed") return { allowed: true, result, reason: "allowed" };
    // Which side refused, in the words of AWS's AccessDenied messages: the same request again with an
    // identity policy that allows everything, so what still refuses is the resource policy.
    const withOpenIdentity = run([ALLOW_ALL]);
    const reason =
      result === "ExplicitlyDenied"
        ? withOpenIdentity === "ExplicitlyDenied"
          ? `with an explicit deny in a resource-based policy`
          : `with an explicit deny in an identity-based policy`
        : withOpenIdentity === "Allowed"
          ? `because no identity-based policy allows the ${auth.action} action`
          : `because no resource-based policy allows the ${auth.action} action`;
    return { allowed: false, result, reason };
  }
}
