import { StrongboxApiError, StrongboxNetworkError } from "./errors.ts";

export interface CacheOptions {
  /** The longest an entry is served without asking again; 5 minutes unless given. */
  readonly maxTtlMs?: number;
  /** How long an entry lives once its read showed a pending version: promotion is near. 5 s unless given. */
  readonly pendingTtlMs?: number;
  /** How long an entry lives once its rotationDueAt has passed and the value has not changed yet. 30 s unless given. */
  readonly overdueTtlMs?: number;
  /** Refresh in the background once this share of an entry's life has passed; 0.8 unless given. */
  readonly refreshAheadRatio?: number;
  /**
   * How long past its expiry an entry may still be served while Strongbox cannot be reached (a lost
   * connection, 429, 502, 503, 504); never on a refusal such as 401, 403 or 404. 5 minutes unless given; 0 turns it off.
   */
  readonly staleIfErrorMs?: number;
  /** While serving stale, how long to wait before asking again; 1 s unless given. */
  readonly errorBackoffMs?: number;
  /** Entries kept at most; the oldest goes first. 1,000 unless given. */
  readonly maxEntries?: number;
}

/** What the cache needs of a read: when its value is due to change. */
export interface RotationHints {
  readonly rotationDueAt?: string | undefined;
  readonly pendingVersion?: number | undefined;
}

interface Entry<V> {
  readonly value: V;
  readonly refreshAt: number;
  readonly expiresAt: number;
  /** Not asked again before this while serving stale. */
  retryAt: number;
}

export type CacheEvent =
  | { readonly kind: "stale"; readonly key: string; readonly error: unknown }
  | { readonly kind: "refresh_failed"; readonly key: string; readonly error: unknown };

/** Errors that say Strongbox is out of reach, as opposed to a refusal, which must not be papered over. */
function isOutage(error: unknown): boolean {
  if (error instanceof StrongboxNetworkError) return true;
  return error instanceof StrongboxApiError && [429, 502, 503, 504].includes(error.status);
}

/**
 * A rotation-aware cache of reads. An entry lives until the earliest of the maximum TTL, the secret's
 * rotationDueAt, and (when its read showed a pending version) a short pending TTL; past a due date
 * that has not brought a new value yet, it is asked again at the overdue TTL. Concurrent misses share
 * one load, loads start ahead of expiry, and an outage is bridged for a bounded time.
 */
export class RotationAwareCache<V extends RotationHints> {
  readonly #entries = new Map<string, Entry<V>>();
  readonly #loading = new Map<string, Promise<V>>();
  readonly #now: () => number;
  readonly #onEvent: (event: CacheEvent) => void;
  readonly #maxTtl: number;
  readonly #pendingTtl: number;
  readonly #overdueTtl: number;
  readonly #refreshAhead: number;
  readonly #staleIfError: number;
  readonly #errorBackoff: number;
  readonly #maxEntries: number;

  constructor(options: CacheOptions, now: () => number, onEvent: (event: CacheEvent) => void) {
    this.#now = now;
    this.#onEvent = onEvent;
    this.#maxTtl = options.maxTtlMs ?? 300_000;
    this.#pendingTtl = options.pendingTtlMs ?? 5_000;
    this.#overdueTtl = options.overdueTtlMs ?? 30_000;
    this.#refreshAhead = Math.min(1, Math.max(0, options.refreshAheadRatio ?? 0.8));
    this.#staleIfError = Math.max(0, options.staleIfErrorMs ?? 300_000);
    this.#errorBackoff = options.errorBackoffMs ?? 1_000;
    this.#maxEntries = Math.max(1, options.maxEntries ?? 1_000);
  }

  /** The cached value while it is fresh; otherwise one load shared by every caller waiting for it. */
  get(key: string, load: () => Promise<V>): V | Promise<V> {
    const now = this.#now();
    const entry = this.#entries.get(key);
    if (entry !== undefined && now < entry.expiresAt) {
      if (now >= entry.refreshAt && !this.#loading.has(key)) {
        this.#load(key, load, entry).catch((error: unknown) =>
          this.#onEvent({ kind: "refresh_failed", key, error }),
        );
      }
      return entry.value;
    }
    if (entry !== undefined && now < entry.retryAt) return entry.value;
    return this.#loading.get(key) ?? this.#load(key, load, entry);
  }

  /** When the value read at `now` is due to change, by what the read says of it. */
  lifetime(value: RotationHints, now: number): number {
    let ttl = this.#maxTtl;
    if (value.pendingVersion !== undefined) ttl = Math.min(ttl, this.#pendingTtl);
    const due = value.rotationDueAt === undefined ? Number.NaN : Date.parse(value.rotationDueAt);
    if (!Number.isNaN(due)) ttl = Math.min(ttl, due > now ? due - now : this.#overdueTtl);
    return ttl;
  }

  /** Drops every entry whose key starts with `prefix`: one secret's, whichever version or stage was read. */
  invalidate(prefix: string): void {
    for (const key of this.#entries.keys()) if (key.startsWith(prefix)) this.#entries.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }

  #load(key: string, load: () => Promise<V>, stale: Entry<V> | undefined): Promise<V> {
    const loading = load()
      .then(
        (value) => {
          this.#store(key, value);
          return value;
        },
        (error: unknown) => {
          const now = this.#now();
          if (stale === undefined || !isOutage(error) || now >= stale.expiresAt + this.#staleIfError) {
            // A refusal (revoked token, deleted secret) or an outage past the bound: never served again.
            if (this.#entries.get(key) === stale) this.#entries.delete(key);
            throw error;
          }
          stale.retryAt = Math.min(now + this.#errorBackoff, stale.expiresAt + this.#staleIfError);
          this.#onEvent({ kind: "stale", key, error });
          return stale.value;
        },
      )
      .finally(() => this.#loading.delete(key));
    this.#loading.set(key, loading);
    return loading;
  }

  #store(key: string, value: V): void {
    const now = this.#now();
    const ttl = this.lifetime(value, now);
    this.#entries.delete(key);
    this.#entries.set(key, {
      value,
      refreshAt: now + ttl * this.#refreshAhead,
      expiresAt: now + ttl,
      retryAt: 0,
    });
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }
}
