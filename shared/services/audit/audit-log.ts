import type { AuditEntry, AuditTrail } from "../../domain/audit-trail.ts";
import { AuditRecordTooLargeError, AuditUnavailableError } from "../../domain/errors.ts";
import { now } from "../../domain/time.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { ChainWriter } from "./chain-writer.ts";

/** The audit trail's one way in: every record is stamped, chained, and its failure counted and logged. */
export class AuditLog implements AuditTrail {
  readonly #chain: ChainWriter;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;

  constructor(chain: ChainWriter, metrics: MetricsRecorder, logger: Logger) {
    this.#chain = chain;
    this.#metrics = metrics;
    this.#logger = logger;
  }

  async record(entry: AuditEntry): Promise<void> {
    try {
      await this.#chain.append({ ...entry, time: now() });
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
  }

  async recordBestEffort(entry: AuditEntry): Promise<void> {
    await this.record(entry).catch(() => undefined);
  }
}
