import type { ItemIntegrity } from "../../domain/item-integrity.ts";
import {
  canonicalSeal,
  GLOBAL_SEAL_SCOPE,
  OPEN,
  type SealCheck,
  type SealRecord,
  type SealStatus,
} from "../../domain/seal.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { SealRepository } from "../../storage/seal-repository.ts";

/**
 * One seal item as it may be trusted. `replaces` is what a conditional write over it must name: its
 * MAC, `null` for an item without one, undefined when there is no item.
 */
export interface ReadSeal {
  /** The record when its MAC verified; undefined when there is no item or it failed its check. */
  readonly record?: SealRecord;
  readonly failedIntegrity: boolean;
  readonly replaces: string | null | undefined;
}

/**
 * The kill switch's check. Both items (the tenant's and the global one) are asked for in the same
 * tick, so the table's reader sends them in the request's one BatchGetItem, beside the token and,
 * on a read, the secret. No memory is shared across instances, so the state is read every time.
 * Fails closed: an item that is not seal-shaped, has no MAC, or whose MAC does not verify is sealed.
 */
export class SealGuard implements SealCheck {
  readonly #seals: SealRepository;
  readonly #integrity: ItemIntegrity;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;

  constructor(seals: SealRepository, integrity: ItemIntegrity, metrics: MetricsRecorder, logger: Logger) {
    this.#seals = seals;
    this.#integrity = integrity;
    this.#metrics = metrics;
    this.#logger = logger;
  }

  async status(tenantId: string): Promise<SealStatus> {
    const [global, own] = await Promise.all([this.read(GLOBAL_SEAL_SCOPE), this.read(tenantId)]);
    for (const [scope, found] of [
      [GLOBAL_SEAL_SCOPE, global],
      [tenantId, own],
    ] as const) {
      if (found.failedIntegrity) return { sealed: true, scope, why: "failed_integrity" };
      if (found.record?.sealed === true) return { sealed: true, scope, why: "sealed" };
    }
    return OPEN;
  }

  /** Is everything sealed? For the health report; an item that fails its check counts as sealed. */
  async globallySealed(): Promise<boolean> {
    const found = await this.read(GLOBAL_SEAL_SCOPE);
    return found.failedIntegrity || found.record?.sealed === true;
  }

  async read(scope: string): Promise<ReadSeal> {
    const stored = await this.#seals.get(scope);
    if (stored === undefined) return { failedIntegrity: false, replaces: undefined };
    const { record, seal } = stored;
    if (
      record !== undefined &&
      seal !== undefined &&
      record.scope === scope &&
      (await this.#integrity.verify(canonicalSeal(record), seal))
    ) {
      return { record, failedIntegrity: false, replaces: seal.mac };
    }
    this.#metrics.increment("IntegrityFailures");
    this.#logger.warn("seal item failed its integrity check; counted as sealed", { scope });
    return { failedIntegrity: true, replaces: seal?.mac ?? null };
  }
}
