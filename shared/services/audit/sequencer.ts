import type { ChainKeys } from "../../crypto/chain-keys.ts";
import type { AnchorLog, PendingAuditRecord } from "../../domain/audit-chain.ts";
import { now } from "../../domain/time.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { AuditRepository } from "../../storage/audit-repository.ts";
import { type ChainEntry, type ChainWriter, MAX_KNOWN_SCOPES } from "./chain-writer.ts";
import { openPending } from "./pending-records.ts";

/** How many waiting records one catch-up takes from a scope's queue. */
const CATCH_UP_RECORDS = 1000;

export interface SequencedBatch {
  readonly sequenced: number;
  /** Records already in the chain: a redelivered batch, or another sequencer that got there first. */
  readonly duplicates: number;
  /** Not records this service's keys made (forged into the table), left where they are for verify. */
  readonly rejected: number;
}

export interface SequencerOptions {
  /**
   * How long a moved chain may go without an anchor. 0 anchors at the end of every batch, which a
   * Lambda sequencer does, since it has no timer to catch a chain that stopped moving.
   */
  readonly anchorIntervalMs: number;
}

/**
 * Integrates waiting records into their chains, in batches: from the stream (the audit sequencer
 * function), from the local witness (`npm start`), or from a scope's queue in the table (before the
 * trail is read). Records are taken from the image the source carries, not from the table, so one
 * deleted from the table before it was chained is chained all the same. Each is checked against its
 * MAC first, so a record a table writer forged is refused. Chained records leave the queue; the
 * chain's head goes to the anchor log when the chain moved and its last anchor is older than the interval.
 */
export class Sequencer {
  readonly #writer: ChainWriter;
  readonly #repository: AuditRepository;
  readonly #keys: ChainKeys;
  readonly #anchors: AnchorLog | undefined;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;
  readonly #anchorIntervalMs: number;
  /** Per scope, when this instance last anchored it and the sequence it anchored; bounded like the heads. */
  readonly #anchored = new Map<string, { at: number; sequence: number }>();

  constructor(
    writer: ChainWriter,
    repository: AuditRepository,
    keys: ChainKeys,
    anchors: AnchorLog | undefined,
    metrics: MetricsRecorder,
    logger: Logger,
    options: SequencerOptions,
  ) {
    this.#writer = writer;
    this.#repository = repository;
    this.#keys = keys;
    this.#anchors = anchors;
    this.#metrics = metrics;
    this.#logger = logger;
    this.#anchorIntervalMs = options.anchorIntervalMs;
  }

  /**
   * Chains a batch of stored images, and then takes them out of the queue. Throws when some scope's
   * records could not be chained, after the others are: the source then delivers the batch again,
   * and what was chained comes back as duplicates.
   */
  async integrate(images: readonly unknown[]): Promise<SequencedBatch> {
    const { batch, cleared } = await this.chain(images);
    await cleared;
    return batch;
  }

  /**
   * Chains a batch, as `integrate` does, and answers once every record is in its chain, with the
   * queue's clearing still under way: a source that must not move on before it is done (the stream's
   * checkpoint) awaits `cleared`, while it chains its next batch. `cleared` is never left unhandled.
   */
  async chain(images: readonly unknown[]): Promise<{ batch: SequencedBatch; cleared: Promise<void> }> {
    const byScope = new Map<string, PendingAuditRecord[]>();
    let rejected = 0;
    for (const image of images) {
      const record = await openPending(this.#keys, image);
      if (record === undefined) {
        rejected += 1;
        continue;
      }
      const list = byScope.get(record.tenantId) ?? [];
      list.push(record);
      byScope.set(record.tenantId, list);
    }
    if (rejected > 0) {
      this.#metrics.increment("IntegrityFailures", rejected);
      this.#logger.error("audit records refused by the sequencer: not made with this service's keys", {
        rejected,
      });
    }
    let sequenced = 0;
    let duplicates = 0;
    const failures: unknown[] = [];
    const chained: PendingAuditRecord[] = [];
    await Promise.all(
      [...byScope].map(async ([scope, records]) => {
        try {
          const states = await Promise.all(records.map((record) => this.#writer.integrate(entryOf(record))));
          for (const { state } of states) {
            if (state === "sequenced") sequenced += 1;
            else duplicates += 1;
          }
          chained.push(...records);
          if (this.#anchorIntervalMs === 0) await this.#anchor(scope);
        } catch (error) {
          failures.push(error);
          this.#logger.error("audit records could not be sequenced", {
            scope,
            records: records.length,
            errorName: error instanceof Error ? error.name : "unknown",
          });
        }
      }),
    );
    // The whole batch's chained records leave the queue together, full calls across scopes: a batch
    // spread over many scopes would otherwise pay a call per scope for a record or two each.
    const cleared = this.#repository.deletePending(chained);
    cleared.catch(() => undefined);
    if (failures.length > 0) {
      await cleared.catch(() => undefined);
      throw failures[0];
    }
    if (this.#anchorIntervalMs > 0) await this.anchorDue();
    return { batch: { sequenced, duplicates, rejected }, cleared };
  }

  /** Chains what waits in one scope's queue in the table, so a read of the trail sees every record so far. */
  async catchUp(scope: string): Promise<SequencedBatch> {
    const images = await this.#repository.pending(scope, CATCH_UP_RECORDS);
    if (images.length === 0) return { sequenced: 0, duplicates: 0, rejected: 0 };
    return this.integrate(images);
  }

  /** Anchors every chain this instance moved whose last anchor is older than the interval (all, with `force`). */
  async anchorDue(force = false): Promise<void> {
    if (this.#anchors === undefined) return;
    const at = Date.now();
    const due = this.#writer.movedScopes().filter((scope) => {
      const last = this.#anchored.get(scope);
      return last === undefined || force || at - last.at >= this.#anchorIntervalMs;
    });
    await Promise.all(due.map((scope) => this.#anchor(scope)));
  }

  async #anchor(scope: string): Promise<void> {
    const head = this.#writer.knownHead(scope);
    if (this.#anchors === undefined || head === undefined) return;
    const last = this.#anchored.get(scope);
    if (last !== undefined && last.sequence >= head.sequence) return;
    await this.#anchors.append({ scope, ...head, time: now() });
    this.#anchored.delete(scope);
    this.#anchored.set(scope, { at: Date.now(), sequence: head.sequence });
    if (this.#anchored.size > MAX_KNOWN_SCOPES) {
      const coldest = this.#anchored.keys().next();
      if (coldest.done !== true) this.#anchored.delete(coldest.value);
    }
  }
}

function entryOf(record: PendingAuditRecord): ChainEntry {
  const { mac: _mac, macKeyRef: _ref, ...entry } = record;
  return entry;
}
