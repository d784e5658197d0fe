import type { AuditFilter, ChainedAuditRecord, ChainHead, ChainVerification } from "../domain/audit-chain.ts";
import {
  AuditRecordTooLargeError,
  AuditUnavailableError,
  AuthorizationError,
  StrongboxError,
} from "../domain/errors.ts";
import { isAllowed, type Permission } from "../domain/policy.ts";
import type { AuditEvent, Page } from "../domain/types.ts";
import type { Logger } from "../observability/logger.ts";
import type { MetricsRecorder } from "../observability/metrics.ts";
import type { AuditRepository } from "../storage/audit-repository.ts";
import type { AuditChain } from "./audit-chain.ts";
import { now, type RequestContext } from "./context.ts";

export type AuditEntry = Omit<AuditEvent, "time">;
export type AuditTarget = Pick<AuditEntry, "tenantId" | "action" | "secretName">;

const EXPORT_PAGE = 500;
export const DEFAULT_DENIAL_WINDOW_MS = 60_000;
/** Open windows are bounded: past this many, the oldest is closed early (its count still recorded). */
const MAX_DENIAL_WINDOWS = 10_000;

interface DenialWindow {
  readonly openedAt: number;
  readonly first: string;
  readonly timer: NodeJS.Timeout;
  repeats: number;
  last?: AuditEvent;
}

/** Times compare as strings in storage, so bounds are brought to the stored form (with milliseconds). */
function normalised(filter: AuditFilter): AuditFilter {
  return {
    ...filter,
    ...(filter.from === undefined ? {} : { from: new Date(filter.from).toISOString() }),
    ...(filter.to === undefined ? {} : { to: new Date(filter.to).toISOString() }),
  };
}

/**
 * The audit trail. Nothing is handed out or changed without a record: reads are answered only once
 * their record is written, and changes only start once their attempt is (both fail closed). Records of
 * denials and failures are best effort, since the caller gets an error either way.
 */
export class AuditService {
  readonly #denials = new Map<string, DenialWindow>();

  constructor(
    private readonly repository: AuditRepository,
    private readonly chain: AuditChain,
    private readonly metrics: MetricsRecorder,
    private readonly logger: Logger,
    /** How long repeated denials by one actor are collapsed into one record; 0 records each one. */
    private readonly denialWindowMs = DEFAULT_DENIAL_WINDOW_MS,
    /** Milliseconds now; injected by tests that move time on without waiting. */
    private readonly clock: () => number = () => Date.now(),
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
      // Nothing was done for it either way; the caller should learn that size, not the store, is why.
      if (error instanceof AuditRecordTooLargeError) throw error;
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
    filter: AuditFilter = {},
  ): Promise<Page<ChainedAuditRecord>> {
    await this.authorize(ctx, "audit:read", { tenantId: scope, action: "audit.read" });
    const page = await this.repository.query(scope, normalised(filter), { limit, cursor });
    await this.record(this.entry(ctx, { tenantId: scope, action: "audit.read", outcome: "success" }));
    return page;
  }

  /**
   * Every matching record, oldest first, with its chain fields, so an export can be checked against
   * the chain later. The export is on the record before the first line goes out (fail closed).
   */
  async export(
    ctx: RequestContext,
    scope: string,
    filter: AuditFilter,
  ): Promise<AsyncGenerator<ChainedAuditRecord>> {
    await this.authorize(ctx, "audit:read", { tenantId: scope, action: "audit.export" });
    const detail = Object.entries(filter)
      .filter(([, value]) => value !== undefined)
      .map(([name, value]) => `${name}=${value}`)
      .join(" ");
    await this.record(
      this.entry(ctx, {
        tenantId: scope,
        action: "audit.export",
        outcome: "success",
        ...(detail ? { detail } : {}),
      }),
    );
    const repository = this.repository;
    return (async function* () {
      let cursor: string | undefined;
      do {
        const page = await repository.query(scope, normalised(filter), {
          limit: EXPORT_PAGE,
          cursor,
          oldestFirst: true,
        });
        yield* page.items;
        cursor = page.nextCursor;
      } while (cursor !== undefined);
    })();
  }

  /**
   * A scope's head as stored, and as this instance last appended it (when it did), for comparing
   * with a verified head later: the per-tenant part of what `/health` showed before it went public.
   */
  async head(
    ctx: RequestContext,
    scope: string,
  ): Promise<{ scope: string; head?: ChainHead; appendedHere?: ChainHead }> {
    await this.authorize(ctx, "audit:read", { tenantId: scope, action: "audit.head" });
    // Taken before the head read's own audit record moves the chain on.
    const stored = await this.chain.storedHead(scope);
    const appendedHere = this.chain.knownHead(scope);
    await this.record(this.entry(ctx, { tenantId: scope, action: "audit.head", outcome: "success" }));
    return {
      scope,
      ...(stored === undefined ? {} : { head: stored }),
      ...(appendedHere === undefined ? {} : { appendedHere }),
    };
  }

  /** Walks the scope's chain; the verification itself goes on the record, with its answer. */
  async verify(ctx: RequestContext, scope: string, expected?: ChainHead): Promise<ChainVerification> {
    await this.authorize(ctx, "audit:read", { tenantId: scope, action: "audit.verify" });
    const result = await this.chain.verify(scope, expected);
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

  /**
   * A denial is counted and recorded. Repeats by one actor in one scope within the window are not
   * each appended: the first is recorded in full at once, the rest are counted, and the count goes
   * into the chain as one `request.denied` record with `count` when the window closes, so a guessing
   * run cannot flood the chain. Unverified callers are one actor: the token id they claim is theirs
   * to vary, so keying on it would let them dodge the collapse.
   */
  async deny(
    target: AuditTarget,
    requestId: string,
    who: Pick<AuditEntry, "actor" | "role">,
    detail?: string,
  ): Promise<void> {
    this.metrics.increment("AuthDenied");
    const entry: AuditEntry = {
      ...target,
      ...who,
      requestId,
      outcome: "denied",
      ...(detail === undefined ? {} : { detail }),
    };
    if (this.denialWindowMs === 0) return this.recordBestEffort(entry);
    const key = JSON.stringify([target.tenantId, who.role, who.role === "anonymous" ? "" : who.actor]);
    const open = this.#denials.get(key);
    const at = this.clock();
    if (open !== undefined && at - open.openedAt < this.denialWindowMs) {
      open.repeats += 1;
      open.last = { ...entry, time: now() };
      return;
    }
    if (open !== undefined) await this.#closeDenialWindow(key);
    if (this.#denials.size >= MAX_DENIAL_WINDOWS) {
      const oldest = this.#denials.keys().next();
      if (oldest.done !== true) await this.#closeDenialWindow(oldest.value);
    }
    const timer = setTimeout(() => void this.#closeDenialWindow(key), this.denialWindowMs);
    timer.unref();
    this.#denials.set(key, { openedAt: at, repeats: 0, first: now(), timer });
    await this.recordBestEffort(entry);
  }

  /** Appends the window's count, if anything repeated, and forgets the window. */
  async #closeDenialWindow(key: string): Promise<void> {
    const window = this.#denials.get(key);
    if (window === undefined) return;
    this.#denials.delete(key);
    clearTimeout(window.timer);
    if (window.repeats === 0 || window.last === undefined) return;
    const { time, ...last } = window.last;
    await this.recordBestEffort({
      ...last,
      count: window.repeats,
      detail: `${window.repeats} further denials from ${window.first} to ${time}; the last was ${last.detail ?? last.action}`,
    });
  }

  /**
   * Closes the windows whose time is up. Their timers cannot be relied on: a Lambda instance is frozen
   * between invocations, and its timers fire only if it is thawed again. So every request closes what
   * has expired before it is served, and a count is lost only with an instance that never serves again.
   * Windows are kept in the order they opened, so this stops at the first one still open.
   */
  async closeExpiredDenials(): Promise<void> {
    const at = this.clock();
    const expired: string[] = [];
    for (const [key, window] of this.#denials) {
      if (at - window.openedAt < this.denialWindowMs) break;
      expired.push(key);
    }
    if (expired.length > 0) await Promise.all(expired.map((key) => this.#closeDenialWindow(key)));
  }

  /** Closes every open denial window now: on server shutdown, or when a test looks. */
  async flushDenials(): Promise<void> {
    await Promise.all([...this.#denials.keys()].map((key) => this.#closeDenialWindow(key)));
  }

  entry<F extends Partial<AuditEntry>>(
    ctx: RequestContext,
    fields: F,
  ): F & Pick<AuditEntry, "actor" | "role" | "requestId"> {
    return { ...fields, actor: ctx.principal.tokenId, role: ctx.principal.role, requestId: ctx.requestId };
  }
}
