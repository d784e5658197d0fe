import type {
  AllowedOperation,
  AuditEntry,
  AuditTrail,
  DenialRecorder,
  OperationGate as Gate,
  OperationTarget,
  OutcomeFields,
} from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import { AuthorizationError, StrongboxError } from "../../domain/errors.ts";
import { type AuditAction, isAllowed, OPERATIONS, type Operation } from "../../domain/operations.ts";
import { SYSTEM_SCOPE } from "../../domain/types.ts";
import { SYSTEM_ACTOR } from "../../domain/work.ts";

/**
 * Authorization and the audit records around every operation. The caller names the operation; its
 * permission and scope come from the operations table, and its records carry it as their action.
 * Nothing is handed out or changed without a record: reads are answered only once their record is
 * written, and changes only start once their attempt is (both fail closed). Records of denials and
 * failures are best effort, since the caller gets an error either way.
 */
export class OperationGate implements Gate {
  readonly #trail: AuditTrail;
  readonly #denials: DenialRecorder;

  constructor(trail: AuditTrail, denials: DenialRecorder) {
    this.#trail = trail;
    this.#denials = denials;
  }

  async begin(
    ctx: RequestContext,
    operation: Operation,
    target: OperationTarget = {},
  ): Promise<AllowedOperation> {
    const scope = scopeOf(operation, target);
    if (!isAllowed(ctx.principal, operation, scope)) {
      await this.#denials.deny({ tenantId: scope, action: operation, ...secretOf(target) }, ctx.requestId, {
        actor: ctx.principal.actor,
        role: ctx.principal.role,
      });
      throw new AuthorizationError(`this token may not perform ${operation} on ${scope}`);
    }
    return this.#allowed({
      tenantId: scope,
      action: operation,
      ...secretOf(target),
      ...(target.detail === undefined ? {} : { detail: target.detail }),
      actor: ctx.principal.actor,
      role: ctx.principal.role,
      requestId: ctx.requestId,
    });
  }

  system(operation: AuditAction, target: OperationTarget, requestId: string): AllowedOperation {
    return this.#allowed({
      tenantId: scopeOf(operation, target),
      action: operation,
      ...secretOf(target),
      ...(target.detail === undefined ? {} : { detail: target.detail }),
      ...SYSTEM_ACTOR,
      requestId,
    });
  }

  #allowed(entry: Omit<AuditEntry, "outcome">): AllowedOperation {
    const trail = this.#trail;
    const outcome = (fields: OutcomeFields = {}) => ({ ...entry, ...fields });
    return {
      async change<T>(run: () => Promise<T>, describe: (result: T) => OutcomeFields = () => ({})) {
        await trail.record({ ...entry, outcome: "attempt" });
        let result: T;
        try {
          result = await run();
        } catch (error) {
          const detail = error instanceof StrongboxError ? error.code : "internal_error";
          await trail.recordBestEffort({ ...entry, outcome: "failure", detail });
          throw error;
        }
        await trail.recordBestEffort({ ...outcome(describe(result)), outcome: "success" });
        return result;
      },
      succeeded: (fields) => trail.record({ ...outcome(fields), outcome: "success" }),
      failed: (fields) => trail.recordBestEffort({ ...outcome(fields), outcome: "failure" }),
    };
  }
}

/**
 * System-scope operations act in `_system` whatever the target says; the others name their scope, and
 * a tenant operation must name a tenant. Breaking either is a programming error, so it throws.
 */
function scopeOf(operation: AuditAction, target: OperationTarget): string {
  const { scope } = OPERATIONS[operation];
  if (scope === "system") return SYSTEM_SCOPE;
  if (target.tenantId === undefined || (scope === "tenant" && target.tenantId === SYSTEM_SCOPE)) {
    throw new TypeError(`${operation} acts on a tenant, and the caller named none`);
  }
  return target.tenantId;
}

const secretOf = (target: OperationTarget) =>
  target.secretName === undefined ? {} : { secretName: target.secretName };
