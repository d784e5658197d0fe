import type { Item, Key } from "./item-reader.ts";

interface Waiter {
  readonly item: Key & Item;
  resolve(written: boolean): void;
  reject(error: unknown): void;
}

/** BatchWriteItem takes at most 25 requests. */
const MAX_BATCH = 25;

/**
 * Puts of items under fresh keys (a random id in the key, so no other writer ever holds the key),
 * coalesced: every put asked for while the event loop is in one phase goes out as one BatchWriteItem
 * (one conditional PutItem when alone, as on a Lambda instance serving one request). A batch takes no
 * condition; none is needed for a key that no one else can know before it is written. Each put
 * answers only once its own item is stored, and fails when it could not be, so a caller that must
 * not go on without its write (an audit record) still fails closed.
 */
export class FreshItemWriter {
  readonly #putOne: (item: Key & Item) => Promise<boolean>;
  readonly #putMany: (items: readonly (Key & Item)[]) => Promise<void>;
  #pending: Waiter[] = [];

  /**
   * `putOne` is the lone put, conditional on the key being absent; `putMany` is one BatchWriteItem of
   * up to 25 puts that throws unless every one was stored.
   */
  constructor(
    putOne: (item: Key & Item) => Promise<boolean>,
    putMany: (items: readonly (Key & Item)[]) => Promise<void>,
  ) {
    this.#putOne = putOne;
    this.#putMany = putMany;
  }

  /** False only when a lone put found its key taken, which a fresh key never is. */
  put(item: Key & Item): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      // setImmediate, not a microtask: requests that resumed on the same response reach here a few
      // hops apart, and all of them ride the same call.
      if (this.#pending.length === 1) setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    const waiters = this.#pending;
    this.#pending = [];
    if (waiters.length === 1) {
      const [waiter] = waiters as [Waiter];
      this.#putOne(waiter.item).then(waiter.resolve, waiter.reject);
      return;
    }
    for (let start = 0; start < waiters.length; start += MAX_BATCH) {
      const batch = waiters.slice(start, start + MAX_BATCH);
      this.#putMany(batch.map((waiter) => waiter.item)).then(
        () => {
          for (const waiter of batch) waiter.resolve(true);
        },
        (error: unknown) => {
          for (const waiter of batch) waiter.reject(error);
        },
      );
    }
  }
}
