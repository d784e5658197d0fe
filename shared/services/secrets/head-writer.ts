import { ConflictError, NotFoundError } from "../../domain/errors.ts";
import type { SealingKey, SecretSealer } from "../../domain/sealing.ts";
import { isLive } from "../../domain/secret-head.ts";
import type { SecretHead } from "../../domain/types.ts";
import type { SecretRepository } from "../../storage/secret-repository.ts";

/**
 * The concurrency on one secret that never sees a spurious 409 (docs/api.md states it). An attempt fails
 * only when another writer committed between its read and its write, and an attempt's windows do not
 * overlap, so among N writers at once each fails at most N - 1 times: N attempts always suffice. The
 * slack covers attempts lost to a DEK snapshot going stale mid-step.
 */
export const GUARANTEED_WRITERS = 64;
const MAX_ATTEMPTS = GUARANTEED_WRITERS + 8;
/** Full-jitter backoff between attempts, so losers spread out instead of re-colliding in lockstep. */
const BACKOFF_BASE_MS = 2;
const BACKOFF_CAP_MS = 50;

function backoff(attempt: number): Promise<void> {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 10));
  return new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling));
}

/** What a step decides after looking at the head: write `next` and answer `result`, or answer `done`. */
export type HeadStep<R> = { readonly next: SecretHead; readonly result: R } | { readonly done: R };

/**
 * The one way a secret's head is changed: take a DEK snapshot, read the head, let the step build the
 * next head (and write any archive copy), then commit with one write conditional on the revision read.
 * Every head write, a sweep's re-seal included, moves the revision, so a step that carries envelopes it
 * read (the current value beside a new pending one, a pending value being promoted, a policy change)
 * can only commit them if nothing re-sealed them meanwhile; otherwise it runs again on the new head.
 * The snapshot must still be fresh both before the step (it may archive the head it read) and before
 * the commit, so nothing lands under a DEK that the sweep may have retired.
 */
export class HeadWriter {
  readonly #secrets: SecretRepository;
  readonly #sealer: SecretSealer;

  constructor(secrets: SecretRepository, sealer: SecretSealer) {
    this.#secrets = secrets;
    this.#sealer = sealer;
  }

  async write<R>(
    tenantId: string,
    name: string,
    step: (head: SecretHead | undefined, key: SealingKey) => HeadStep<R> | Promise<HeadStep<R>>,
  ): Promise<R> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
      if (attempt > 0) await backoff(attempt);
      const key = await this.#sealer.sealingKey(tenantId);
      const head = await this.#secrets.getHead(tenantId, name);
      if (!key.fresh()) continue;
      const outcome = await step(head, key);
      if ("done" in outcome) return outcome.done;
      if (!key.fresh()) continue;
      if (await this.#secrets.replaceHead(outcome.next, head)) return outcome.result;
    }
    throw new ConflictError(
      `secret ${name} had more than ${GUARANTEED_WRITERS} concurrent writers; read it and retry`,
    );
  }

  /** A change of a live secret's head: read, change, conditional write; an unchanged head is not written. */
  update(
    tenantId: string,
    name: string,
    change: (head: SecretHead, key: SealingKey) => SecretHead | Promise<SecretHead>,
  ): Promise<SecretHead> {
    return this.write(tenantId, name, async (head, key) => {
      if (!isLive(head)) throw new NotFoundError(`secret ${name} does not exist in tenant ${tenantId}`);
      const next = await change(head, key);
      return next === head ? { done: head } : { next, result: { ...next, revision: head.revision + 1 } };
    });
  }
}
