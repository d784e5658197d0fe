import { randomUUID } from "node:crypto";
import { AuditUnavailableError, AuthorizationError } from "../domain/errors.ts";
import { isAllowed, type Permission } from "../domain/policy.ts";
import type { AuditEvent } from "../domain/types.ts";
import type { Logger } from "../observability/logger.ts";
import type { MetricsRecorder } from "../observability/metrics.ts";
import type { AuditRepository } from "../storage/audit-repository.ts";
import type { Page } from "../storage/table.ts";
import { now, type RequestContext } from "./context.ts";

export type AuditEntry = Omit<AuditEvent, "time">;
export type AuditTarget = Pick<AuditEntry, "tenantId" | "action" | "secretName">;

/**
 * The audit trail. A successful operation is not answered until its record is written (fail closed);
 * records of denials and failures are best effort, since the caller gets an error either way.
 */
export class AuditService {
  constructor(
    private readonly repository: AuditRepository,
    private readonly metrics: MetricsRecorder,
    private readonly logger: Logger,
  ) {}

  async record(entry: AuditEntry): Promise<void> {
    try {
      await this.repository.append({ ...entry, time: now() }, randomUUID());
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

  async recordBestEffort(entry: AuditEntry): Promise<void> {
    await this.record(entry).catch(() => undefined);
  }

  async list(ctx: RequestContext, scope: string, limit: number, cursor?: string): Promise<Page<AuditEvent>> {
    await this.authorize(ctx, "audit:read", { tenantId: scope, action: "audit.read" });
    const page = await this.repository.listNewestFirst(scope, limit, cursor);
    await this.record(this.entry(ctx, { tenantId: scope, action: "audit.read", outcome: "success" }));
    return page;
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

  entry(ctx: RequestContext, fields: Omit<AuditEntry, "actor" | "role" | "requestId">): AuditEntry {
    return { ...fields, actor: ctx.principal.tokenId, role: ctx.principal.role, requestId: ctx.requestId };
  }
}
