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
import { AuthorizationError, StrongboxError, TenantSealedError } from "../../domain/errors.ts";
import {
  type AuditAction,
  answersWhileSealed,
  isAllowed,
  OPERATIONS,
  type Operation,
  severityOf,
} from "../../domain/operations.ts";
import type { DataKeyDropper, SealCheck, SealStatus } from "../../domain/seal.ts";
import { SYSTEM_SCOPE } from "../../domain/types.ts";
import { SYSTEM_ACTOR } from "../../domain/work.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";

/** The kill switch as the gate enforces it: the check, and what to drop and count when it refuses. */
export interface SealEnforcement {
  readonly check: SealCheck;
  readonly dataKeys: DataKeyDropper;
  readonly metrics: MetricsRecorder;
}

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
  readonly #seals: SealEnforcement | undefined;

  constructor(trail: AuditTrail, denials: DenialRecorder, seals?: SealEnforcement) {
    this.#trail = trail;
    this.#denials = denials;
    this.#seals = seals;
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
    const who = { actor: ctx.principal.actor, role: ctx.principal.role } as const;
    await this.#refuseIfSealed(operation, scope, target, ctx.requestId, who);
    return this.#allowed({
      tenantId: scope,
      action: operation,
      ...secretOf(target),
      ...(target.detail === undefined ? {} : { detail: target.detail }),
      actor: ctx.principal.actor,
      role: ctx.principal.role,
      requestId: ctx.requestId,
      // Every use of a break-glass credential is for an operator to look at.
      ...(ctx.principal.breakGlass === undefined ? {} : { severity: "high" as const }),
    });
  }

  system(
    operation: AuditAction,
    target: OperationTarget,
    requestId: string,
    who: Pick<AuditEntry, "actor" | "role"> = SYSTEM_ACTOR,
  ): AllowedOperation {
    const scope = scopeOf(operation, target);
    // The service's own work on a sealed tenant is refused too, as it starts: a sweep, a rotation.
    return this.#allowed(
      {
        tenantId: scope,
        action: operation,
        ...secretOf(target),
        ...(target.detail === undefined ? {} : { detail: target.detail }),
        ...who,
        requestId,
      },
      () => this.#refuseIfSealed(operation, scope, target, requestId, who),
    );
  }

  /**
   * Refuses a tenant operation while its tenant, or everything, is sealed (423), and records each
   * refusal at high severity. The status comes from the target when the use case fetched it beside
   * its other reads (a secret read does), otherwise it is read here. The tenant's DEKs leave this
   * process's cache as soon as it is seen sealed, whichever instance sealed it.
   */
  async #refuseIfSealed(
    operation: AuditAction,
    scope: string,
    target: OperationTarget,
    requestId: string,
    who: Pick<AuditEntry, "actor" | "role">,
  ): Promise<void> {
    const seals = this.#seals;
    if (seals === undefined || scope === SYSTEM_SCOPE || answersWhileSealed(operation)) return;
    const status: SealStatus = target.sealStatus ?? (await seals.check.status(scope));
    if (!status.sealed) return;
    seals.dataKeys.forgetTenant(scope);
    seals.metrics.increment("SealRefusals");
    if (status.scope !== scope) seals.metrics.increment("GlobalSealActive");
    const why = status.why === "failed_integrity" ? "seal_failed_integrity" : "tenant_sealed";
    await this.#trail.recordBestEffort({
      tenantId: scope,
      action: operation,
      outcome: "denied",
      ...secretOf(target),
      ...who,
      requestId,
      detail: status.scope === scope ? why : `${why} (global seal)`,
      severity: "high",
    });
    throw new TenantSealedError(
      status.scope === scope
        ? `tenant ${scope} is sealed; an admin must unseal it`
        : "every tenant is sealed (global seal); an admin must unseal it",
    );
  }

  #allowed(base: Omit<AuditEntry, "outcome">, guard?: () => Promise<void>): AllowedOperation {
    const trail = this.#trail;
    const severity = severityOf(base.action);
    const entry = severity === undefined ? base : { ...base, severity };
    const outcome = (fields: OutcomeFields = {}) => ({ ...entry, ...fields });
    return {
      async change<T>(run: () => Promise<T>, describe: (result: T) => OutcomeFields = () => ({})) {
        await guard?.();
        await trail.record({ ...entry, outcome: "attempt" });
        let result: T;
        try {
          result = await run();
        } catch (error) {
          const detail = error instanceof StrongboxError ? error.code : "internal_error";
          const severity = error instanceof StrongboxError ? error.severity : undefined;
          await trail.recordBestEffort({
            ...entry,
            outcome: "failure",
            detail,
            ...(severity === undefined ? {} : { severity }),
          });
          throw error;
        }
        await trail.recordBestEffort({ ...outcome(describe(result)), outcome: "success" });
        return result;
      },
      succeeded: async (fields) => {
        await guard?.();
        await trail.record({ ...outcome(fields), outcome: "success" });
      },
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
  if (scope === "system" || scope === "self") return SYSTEM_SCOPE;
  if (target.tenantId === undefined || (scope === "tenant" && target.tenantId === SYSTEM_SCOPE)) {
    throw new TypeError(`${operation} acts on a tenant, and the caller named none`);
  }
  return target.tenantId;
}

const secretOf = (target: OperationTarget) =>
  target.secretName === undefined ? {} : { secretName: target.secretName };
