import { generatorEntropyBits } from "../../crypto/generate.ts";
import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import { ValidationError } from "../../domain/errors.ts";
import type { RotationPolicyInput } from "../../domain/schemas.ts";
import { DAY_MS } from "../../domain/time.ts";
import type { GeneratorSpec, Page, RotationPolicy } from "../../domain/types.ts";
import type { VerifierSpec } from "../../domain/verification.ts";
import type { SecretRepository } from "../../storage/secret-repository.ts";
import type { HeadWriter } from "./head-writer.ts";

/** The least entropy a generated secret may have: as strong as an AES-128 key. */
const MIN_GENERATED_BITS = 128;

export interface PolicyView {
  readonly name: string;
  readonly rotationPeriodDays?: number;
  readonly rotationDueAt?: string;
  readonly generator?: GeneratorSpec;
  readonly lastRotatedAt?: string;
  readonly verifier?: VerifierSpec;
}

export interface DueSecret {
  readonly name: string;
  readonly version: number;
  readonly rotationDueAt: string;
  readonly overdue: boolean;
  /** `generated` secrets the service rotates itself; `byok` ones wait for an operator's new value. */
  readonly rotatedBy: "generated" | "byok";
  readonly pendingVersion?: number;
}

function policyView(name: string, policy: RotationPolicy | undefined): PolicyView {
  return {
    name,
    ...(policy?.periodDays === undefined ? {} : { rotationPeriodDays: policy.periodDays }),
    ...(policy?.dueAt === undefined ? {} : { rotationDueAt: policy.dueAt }),
    ...(policy?.generator === undefined ? {} : { generator: policy.generator }),
    ...(policy?.lastRotatedAt === undefined ? {} : { lastRotatedAt: policy.lastRotatedAt }),
    ...(policy?.verifier === undefined ? {} : { verifier: policy.verifier }),
  };
}

/** When each secret is due for rotation, and how the service makes its next value if it does. */
export class RotationPolicies {
  readonly #secrets: SecretRepository;
  readonly #gate: OperationGate;
  readonly #heads: HeadWriter;

  constructor(secrets: SecretRepository, gate: OperationGate, heads: HeadWriter) {
    this.#secrets = secrets;
    this.#gate = gate;
    this.#heads = heads;
  }

  async setPolicy(
    ctx: RequestContext,
    tenantId: string,
    name: string,
    input: RotationPolicyInput,
  ): Promise<PolicyView> {
    const operation = await this.#gate.begin(ctx, "secret.rotation-policy", { tenantId, secretName: name });
    if (input.generator !== undefined && input.generator !== null) {
      const bits = generatorEntropyBits({
        kind: input.generator.kind,
        length: input.generator.length,
        ...(input.generator.alphabet === undefined ? {} : { alphabet: input.generator.alphabet }),
      });
      if (bits < MIN_GENERATED_BITS) {
        throw new ValidationError(
          `a generated secret needs at least ${MIN_GENERATED_BITS} bits (length × log2(alphabet size)); this generator gives ${Math.floor(bits)}`,
        );
      }
    }
    return operation.change(() =>
      this.#heads
        .update(tenantId, name, (head) => {
          const {
            periodDays: _p,
            generator: _g,
            verifier: _v,
            dueAt: _d,
            notifiedDueAt: _n,
            ...kept
          } = head.rotation ?? {};
          const periodDays =
            input.rotationPeriodDays === undefined ? head.rotation?.periodDays : input.rotationPeriodDays;
          const requested = input.generator;
          const generator: GeneratorSpec | null | undefined =
            requested === undefined
              ? head.rotation?.generator
              : requested === null
                ? null
                : {
                    kind: requested.kind,
                    length: requested.length,
                    ...(requested.alphabet === undefined ? {} : { alphabet: requested.alphabet }),
                  };
          const verifier: VerifierSpec | null | undefined =
            input.verifier === undefined
              ? head.rotation?.verifier
              : input.verifier === null
                ? null
                : "url" in input.verifier
                  ? { url: input.verifier.url }
                  : { lambdaArn: input.verifier.lambdaArn };
          const since = Date.parse(head.rotation?.lastRotatedAt ?? head.current.createdAt);
          const rotation: RotationPolicy = {
            ...kept,
            ...(periodDays === null || periodDays === undefined
              ? {}
              : { periodDays, dueAt: new Date(since + periodDays * DAY_MS).toISOString() }),
            ...(generator === null || generator === undefined ? {} : { generator }),
            ...(verifier === null || verifier === undefined ? {} : { verifier }),
          };
          const { rotation: _old, ...rest } = head;
          return { ...rest, ...(Object.keys(rotation).length === 0 ? {} : { rotation }) };
        })
        .then((head) => policyView(name, head.rotation)),
    );
  }

  /** Secrets due for rotation within `withinDays` (0: due now), overdue ones flagged. */
  async listDue(
    ctx: RequestContext,
    tenantId: string,
    withinDays: number,
    limit: number,
    cursor?: string,
  ): Promise<Page<DueSecret>> {
    const operation = await this.#gate.begin(ctx, "rotation.read", { tenantId });
    const at = Date.now();
    const before = new Date(at + withinDays * DAY_MS).toISOString();
    const page = await this.#secrets.listDue(tenantId, before, limit, cursor);
    await operation.succeeded();
    return {
      ...page,
      items: page.items.map((head) => {
        const dueAt = head.rotation?.dueAt ?? "";
        return {
          name: head.name,
          version: head.current.version,
          rotationDueAt: dueAt,
          overdue: Date.parse(dueAt) <= at,
          rotatedBy: head.rotation?.generator === undefined ? "byok" : "generated",
          ...(head.pending === undefined ? {} : { pendingVersion: head.pending.version }),
        };
      }),
    };
  }
}
