export interface DataKeyCacheOptions {
  /** How long an unwrapped DEK may stay in memory. */
  readonly maxAgeMs?: number;
  /** How many times a cached DEK may be handed out before it is unwrapped afresh. */
  readonly maxUses?: number;
  readonly maxEntries?: number;
  readonly now?: () => number;
}

interface Entry {
  readonly key: Uint8Array;
  readonly loadedAt: number;
  uses: number;
}

export const DEFAULT_DATA_KEY_MAX_AGE_MS = 5 * 60 * 1000;
export const DEFAULT_DATA_KEY_MAX_USES = 100_000;

/**
 * Unwrapped data keys, bounded by age and use count. Concurrent misses for one key share a single
 * load, unlike the AWS Encryption SDK's cache (aws-encryption-sdk-javascript #421), so a burst of
 * cold reads makes one KMS call rather than one per request.
 */
export class DataKeyCache {
  readonly #entries = new Map<string, Entry>();
  readonly #inFlight = new Map<string, Promise<Uint8Array>>();
  readonly #maxAgeMs: number;
  readonly #maxUses: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  /** The one pending sweep of expired entries, if any entries are held. */
  #sweep: ReturnType<typeof setTimeout> | undefined;

  constructor(options: DataKeyCacheOptions = {}) {
    this.#maxAgeMs = options.maxAgeMs ?? DEFAULT_DATA_KEY_MAX_AGE_MS;
    this.#maxUses = options.maxUses ?? DEFAULT_DATA_KEY_MAX_USES;
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#now = options.now ?? Date.now;
    if (!(this.#maxAgeMs > 0) || !Number.isInteger(this.#maxUses) || this.#maxUses < 1) {
      throw new RangeError("data key cache needs a positive maxAgeMs and a positive integer maxUses");
    }
  }

  async get(cacheKey: string, load: () => Promise<Uint8Array>): Promise<Uint8Array> {
    this.#dropExpired();
    const entry = this.#entries.get(cacheKey);
    if (entry !== undefined) {
      if (this.#now() - entry.loadedAt < this.#maxAgeMs && entry.uses < this.#maxUses) {
        entry.uses += 1;
        return entry.key;
      }
      this.evict(cacheKey);
    }
    const pending = this.#inFlight.get(cacheKey);
    if (pending !== undefined) return pending;

    const loading = load().then(
      (key) => {
        this.#inFlight.delete(cacheKey);
        this.#store(cacheKey, key);
        return key;
      },
      (error: unknown) => {
        this.#inFlight.delete(cacheKey);
        throw error;
      },
    );
    this.#inFlight.set(cacheKey, loading);
    return loading;
  }

  // Evicted keys are dropped, not zeroed: a request that was handed the key may still be using it.
  evict(cacheKey: string): void {
    this.#entries.delete(cacheKey);
  }

  /** Every key whose cache key starts with `prefix`, such as all of one tenant's DEK versions. */
  evictPrefix(prefix: string): void {
    for (const cacheKey of [...this.#entries.keys()]) {
      if (cacheKey.startsWith(prefix)) this.#entries.delete(cacheKey);
    }
  }

  clear(): void {
    this.#entries.clear();
    clearTimeout(this.#sweep);
    this.#sweep = undefined;
  }

  get size(): number {
    return this.#entries.size;
  }

  #store(cacheKey: string, key: Uint8Array): void {
    if (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.evict(oldest.value);
    }
    // Deleted first so the Map's order stays load order, which #dropExpired relies on.
    this.#entries.delete(cacheKey);
    this.#entries.set(cacheKey, { key, loadedAt: this.#now(), uses: 1 });
    this.#scheduleSweep();
  }

  /**
   * An expired DEK must leave memory even if no request asks for it again, so a process that goes quiet
   * does not keep every tenant's key. Entries are held in load order, so the expired ones are in front.
   */
  #dropExpired(): void {
    const cutoff = this.#now() - this.#maxAgeMs;
    for (const [cacheKey, entry] of this.#entries) {
      if (entry.loadedAt > cutoff) break;
      this.#entries.delete(cacheKey);
    }
  }

  #scheduleSweep(): void {
    if (this.#sweep !== undefined) return;
    const oldest = this.#entries.values().next();
    if (oldest.done === true) return;
    const dueInMs = Math.max(0, oldest.value.loadedAt + this.#maxAgeMs - this.#now());
    this.#sweep = setTimeout(() => {
      this.#sweep = undefined;
      this.#dropExpired();
      this.#scheduleSweep();
    }, dueInMs + 1);
    // The sweep never keeps a process alive on its own.
    this.#sweep.unref?.();
  }
}
