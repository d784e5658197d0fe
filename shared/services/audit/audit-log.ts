import type { ChainKeys } from "../../crypto/chain-keys.ts";
import { estimatedRecordBytes, MAX_BLOCK_BYTES } from "../../domain/audit-block.ts";
import { capAuditFields, type PendingAuditRecord } from "../../domain/audit-chain.ts";
import type { AuditEntry, AuditTrail } from "../../domain/audit-trail.ts";
import { AuditRecordTooLargeError, AuditUnavailableError } from "../../domain/errors.ts";
import { now } from "../../domain/time.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { AuditRepository } from "../../storage/audit-repository.ts";
import { sealPending } from "./pending-records.ts";
import type { Sequencer } from "./sequencer.ts";

/** Where the request path's records are also written, out of reach of table writers: the local witness. */
export interface PendingWitness {
  append(record: PendingAuditRecord): void;
}

export interface AuditLogOptions {
  /** Locally, a file the sequencer reads, as it reads the stream in AWS. */
  readonly witness?: PendingWitness;
  /**
   * Chains each record before answering (`inline`), or leaves it to a sequencer (`deferred`). Inline
   * costs what the chain costs; tests use it so a chain can be inspected as soon as a call returns.
   */
  readonly inline?: Sequencer;
}

/**
 * The audit trail's one way in. A record is stamped, MAC'd and written under its own unique key: one
 * write no other instance contends with, durable before the caller goes on (fail closed). A sequencer
 * chains it later; its failure is counted and logged.
 */
export class AuditLog implements AuditTrail {
  readonly #repository: AuditRepository;
  readonly #keys: ChainKeys;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;
  readonly #options: AuditLogOptions;

  constructor(
    repository: AuditRepository,
    keys: ChainKeys,
    metrics: MetricsRecorder,
    logger: Logger,
    options: AuditLogOptions = {},
  ) {
    this.#repository = repository;
    this.#keys = keys;
    this.#metrics = metrics;
    this.#logger = logger;
    this.#options = options;
  }

  async record(entry: AuditEntry): Promise<void> {
    let pending: PendingAuditRecord;
    try {
      const event = capAuditFields({ ...entry, time: now() });
      const bytes = estimatedRecordBytes(event);
      if (bytes > MAX_BLOCK_BYTES) {
        throw new AuditRecordTooLargeError(
          `an audit record of ${bytes} bytes for ${event.action} exceeds the ${MAX_BLOCK_BYTES}-byte block limit`,
        );
      }
      pending = await sealPending(this.#keys, event);
      if (!(await this.#repository.putPending(pending))) throw new Error("audit record id taken");
      this.#options.witness?.append(pending);
    } catch (error) {
      this.#metrics.increment("AuditWriteFailures");
      this.#logger.error("audit record could not be written", {
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
    // The record is durable already; if chaining it now fails, a sequencer chains it later.
    await this.#options.inline?.integrate([pending]).catch(() => undefined);
  }

  async recordBestEffort(entry: AuditEntry): Promise<void> {
    await this.record(entry).catch(() => undefined);
  }
}
