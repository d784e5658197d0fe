import type { ChainedAuditRecord, ChainVerification } from "../domain/audit-chain.ts";
import { AuditUnavailableError, AuthorizationError, StrongboxError } from "../domain/errors.ts";
import { isAllowed, type Permission } from "../domain/policy.ts";
import type { AuditEvent, Page } from "../domain/types.ts";
import type { Logger } from "../observability/logger.ts";
import type { MetricsRecorder } from "../observability/metrics.ts";
import type { AuditRepository } from "../storage/audit-repository.ts";
import type { AuditChain } from "./audit-chain.ts";
import { now, type RequestContext } from "./context.ts";

export type AuditEntry = Omit<AuditEvent, "time">;
export type AuditTarget = Pick<AuditEntry, "tenantId" | "action" | "secretName">;

/**
 * The audit trail. Nothing is handed out or changed without a record: reads are answered only once
 * their record is written, and changes only start once their attempt is (both fail closed). Records of
 * denials and failures are best effort, since the caller gets an error either way.
 */
export class AuditService {
  constructor(
    private readonly repository: AuditRepository,
    private readonly chain: AuditChain,
    private readonly metrics: MetricsRecorder,
    private readonly logger: Logger,
  ) {}

  async record(entry: AuditEntry): Promise<void> {
    try {
      await this.chain.append({ ...entry, time: now() });
    } catch (error) {
      this.metrics.increment("AuditWriteFailures");
      this.logger.error("audit record could not be written", {
        action: entry.action,
        tenantId: entry.tenantId,
        requestId: entry.requestId,
        errorName: error instanceof Error ? error.name : "unknown",
      });
      throw new AuditUnavailableError("the audit record could not be written, so the request was refused", {
        cause: error,
      });
    }
  }

  /**
   * Runs a change between two records. The `attempt` is written first and fails closed: if it cannot
   * be written, nothing is changed. The outcome is best effort, since the change has then happened and
   * its attempt is already on the record.
   */
  async aroundChange<T>(
    entry: Omit<AuditEntry, "outcome">,
    change: () => Promise<T>,
    describe: (result: T) => Pick<AuditEntry, "version" | "detail"> = () => ({}),
  ): Promise<T> {
    await this.record({ ...entry, outcome: "attempt" });
    let result: T;
    try {
      result = await change();
    } catch (error) {
      const detail = error instanceof StrongboxError ? error.code : "internal_error";
      await this.recordBestEffort({ ...entry, outcome: "failure", detail });
      throw error;
    }
    await this.recordBestEffort({ ...entry, ...describe(result), outcome: "success" });
    return result;
  }

  async recordBestEffort(entry: AuditEntry): Promise<void> {
    await this.record(entry).catch(() => undefined);
  }

  async list(
    ctx: RequestContext,
    scope: string,
    limit: number,
    cursor?: string,
  ): Promise<Page<ChainedAuditRecord>> {
    await this.authorize(ctx, "audit:read", { tenantId: scope, action: "audit.read" });
    const page = await this.repository.listNewestFirst(scope, limit, cursor);
    await this.record(this.entry(ctx, { tenantId: scope, action: "audit.read", outcome: "success" }));
    return page;
  }

  /** Walks the scope's chain; the verification itself goes on the record, with its answer. */
  async verify(ctx: RequestContext, scope: string): Promise<ChainVerification> {
    await this.authorize(ctx, "audit:read", { tenantId: scope, action: "audit.verify" });
    const result = await this.chain.verify(scope);
    const detail =
      result.break === undefined
        ? `intact up to sequence ${result.verifiedThrough}`
        : `broken at sequence ${result.break.sequence}: ${result.break.reason}`;
    await this.record(
      this.entry(ctx, { tenantId: scope, action: "audit.verify", outcome: "success", detail }),
    );
    return result;
  }

  /** Every use case starts here: a denied attempt is counted, recorded, and refused. */
  async authorize(ctx: RequestContext, permission: Permission, target: AuditTarget): Promise<void> {
    if (isAllowed(ctx.principal, permission, target.tenantId)) return;
    await this.deny(target, ctx.requestId, { actor: ctx.principal.tokenId, role: ctx.principal.role });
    throw new AuthorizationError(`this token may not perform ${target.action} on ${target.tenantId}`);
  }

  async deny(
    target: AuditTarget,
    requestId: string,
    who: Pick<AuditEntry, "actor" | "role">,
    detail?: string,
  ): Promise<void> {
    this.metrics.increment("AuthDenied");
    await this.recordBestEffort({
      ...target,
      ...who,
      requestId,
      outcome: "denied",
      ...(detail === undefined ? {} : { detail }),
    });
  }

  entry<F extends Partial<AuditEntry>>(
    ctx: RequestContext,
    fields: F,
  ): F & Pick<AuditEntry, "actor" | "role" | "requestId"> {
    return { ...fields, actor: ctx.principal.tokenId, role: ctx.principal.role, requestId: ctx.requestId };
  }
}
