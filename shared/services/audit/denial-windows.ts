import type { AuditEntry, AuditTarget, AuditTrail, DenialRecorder } from "../../domain/audit-trail.ts";
import { now } from "../../domain/time.ts";
import { type AuditEvent, SYSTEM_SCOPE } from "../../domain/types.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";

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

/**
 * A denial is counted and recorded. Repeats by one actor in one scope within the window are not each
 * appended: the first is recorded in full at once, the rest are counted, and the count goes into the
 * chain as one `request.denied` record with `count` when the window closes, so a guessing run cannot
 * flood the chain. Callers presenting no token, or the id of no stored token, are one actor: the id
 * they claim is theirs to vary, so keying on it would let them dodge the collapse. A presented
 * id that names a stored token (revoked, expired, or with the wrong secret) is that token's actor and
 * keeps a window of its own, so it is never hidden among the anonymous. Windows are bounded in number.
 *
 * A denial naming a tenant that does not exist goes into `_system`, naming the tenant in its detail:
 * an invented tenant in a path must not open a chain of its own.
 */
export class DenialWindows implements DenialRecorder {
  readonly #open = new Map<string, DenialWindow>();
  readonly #trail: AuditTrail;
  readonly #metrics: MetricsRecorder;
  /** How long repeated denials by one actor are collapsed into one record; 0 records each one. */
  readonly #windowMs: number;

  readonly #tenantExists: (tenantId: string) => Promise<boolean>;

  constructor(
    trail: AuditTrail,
    metrics: MetricsRecorder,
    windowMs = DEFAULT_DENIAL_WINDOW_MS,
    tenantExists: (tenantId: string) => Promise<boolean> = async () => true,
  ) {
    this.#trail = trail;
    this.#metrics = metrics;
    this.#windowMs = windowMs;
    this.#tenantExists = tenantExists;
  }

  async deny(
    target: AuditTarget,
    requestId: string,
    caller: Pick<AuditEntry, "actor" | "role"> & { readonly stored?: boolean },
    detail?: string,
  ): Promise<void> {
    const { stored, ...who } = caller;
    this.#metrics.increment("AuthDenied");
    const exists =
      target.tenantId === SYSTEM_SCOPE || (await this.#tenantExists(target.tenantId).catch(() => false));
    const scoped = exists ? target : { ...target, tenantId: SYSTEM_SCOPE };
    const said = exists
      ? detail
      : [detail, `names tenant ${target.tenantId}, which does not exist`].filter(Boolean).join("; ");
    const entry: AuditEntry = {
      ...scoped,
      ...who,
      requestId,
      outcome: "denied",
      ...(said === undefined ? {} : { detail: said }),
    };
    if (this.#windowMs === 0) return this.#trail.recordBestEffort(entry);
    const key = JSON.stringify([
      scoped.tenantId,
      who.role,
      who.role === "anonymous" && stored !== true ? "" : who.actor,
    ]);
    const open = this.#open.get(key);
    const at = Date.now();
    if (open !== undefined && at - open.openedAt < this.#windowMs) {
      open.repeats += 1;
      open.last = { ...entry, time: now() };
      return;
    }
    if (open !== undefined) await this.#close(key);
    if (this.#open.size >= MAX_DENIAL_WINDOWS) {
      const oldest = this.#open.keys().next();
      if (oldest.done !== true) await this.#close(oldest.value);
    }
    const timer = setTimeout(() => void this.#close(key), this.#windowMs);
    timer.unref();
    this.#open.set(key, { openedAt: at, repeats: 0, first: now(), timer });
    await this.#trail.recordBestEffort(entry);
  }

  /** Appends the window's count, if anything repeated, and forgets the window. */
  async #close(key: string): Promise<void> {
    const window = this.#open.get(key);
    if (window === undefined) return;
    this.#open.delete(key);
    clearTimeout(window.timer);
    if (window.repeats === 0 || window.last === undefined) return;
    const { time, ...last } = window.last;
    await this.#trail.recordBestEffort({
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
  async closeExpired(): Promise<void> {
    const at = Date.now();
    const expired: string[] = [];
    for (const [key, window] of this.#open) {
      if (at - window.openedAt < this.#windowMs) break;
      expired.push(key);
    }
    if (expired.length > 0) await Promise.all(expired.map((key) => this.#close(key)));
  }

  /** Closes every open window now: on server shutdown, or when a test looks. */
  async flush(): Promise<void> {
    await Promise.all([...this.#open.keys()].map((key) => this.#close(key)));
  }
}
