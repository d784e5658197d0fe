import { type ChainKeys, refKeeper } from "../../crypto/chain-keys.ts";
import { newRecordId } from "../../crypto/record-id.ts";
import { reanchorDetail } from "../../domain/audit-chain.ts";
import type { AuditTrail } from "../../domain/audit-trail.ts";
import type { ChainReanchoring, ReanchorOutcome } from "../../domain/rotation.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { AuditRepository } from "../../storage/audit-repository.ts";
import type { ChainVerifier } from "./chain-verifier.ts";
import { openPending } from "./pending-records.ts";
import type { Sequencer } from "./sequencer.ts";

/** Catch-ups of one scope's queue before its walk; each chains up to a thousand records. */
const MAX_CATCH_UPS = 10;
/** Re-anchors of one scope in one call, should records keyed by an old keeper keep landing after it. */
const MAX_ANCHORS = 3;

/**
 * Re-anchoring, the last step of a KEK re-wrap (docs/audit-chain.md#re-anchoring): while the previous
 * KEK is still configured, a chain that needed it is verified whole and then attested by a record
 * under the active key. Waiting records are chained first, since after the old KEK is gone the
 * sequencer can no longer check their MACs.
 */
export class ChainReanchor implements ChainReanchoring {
  readonly #keys: ChainKeys;
  readonly #verifier: ChainVerifier;
  readonly #sequencer: Sequencer;
  readonly #trail: AuditTrail;
  readonly #repository: AuditRepository;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;

  constructor(options: {
    readonly keys: ChainKeys;
    readonly verifier: ChainVerifier;
    readonly sequencer: Sequencer;
    readonly trail: AuditTrail;
    readonly repository: AuditRepository;
    readonly metrics: MetricsRecorder;
    readonly logger: Logger;
  }) {
    this.#keys = options.keys;
    this.#verifier = options.verifier;
    this.#sequencer = options.sequencer;
    this.#trail = options.trail;
    this.#repository = options.repository;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
  }

  needed(): boolean {
    return this.#keys.previousKeepers().length > 0;
  }

  async reanchor(
    scope: string,
    options: { readonly budgetMs: number; readonly cursor?: string; readonly stale?: boolean },
  ): Promise<ReanchorOutcome> {
    const active = refKeeper((await this.#keys.current(new Date())).ref);
    let stale = options.stale === true;
    let cursor = options.cursor;
    for (let anchors = 0; anchors < MAX_ANCHORS; anchors += 1) {
      if (cursor === undefined) await this.#drain(scope);
      const result = await this.#verifier.verify(scope, undefined, {
        budgetMs: options.budgetMs,
        ...(cursor === undefined ? {} : { cursor }),
        onKeeper: (keeper) => {
          if (keeper !== active) stale = true;
        },
      });
      if (result.nextCursor !== undefined) return { status: "unfinished", cursor: result.nextCursor, stale };
      if (!result.intact) {
        this.#metrics.increment("IntegrityFailures");
        this.#logger.warn("audit chain is not intact under the configured keys; it is not re-anchored", {
          scope,
          sequence: result.break?.sequence,
          reason: result.break?.reason,
        });
        return { status: "broken" };
      }
      if (!stale || result.head === undefined) {
        if (await this.#waitingUnderOldKeeper(scope, active)) return this.#waiting(scope, stale);
        return { status: anchors === 0 ? "current" : "reanchored" };
      }
      await this.#trail.record({
        tenantId: scope,
        action: "audit.reanchor",
        outcome: "success",
        actor: "system",
        role: "system",
        requestId: `reanchor-${newRecordId()}`,
        detail: reanchorDetail(result.head),
      });
      await this.#drain(scope);
      // What landed between the walk's end and the re-anchor is not attested by it: a record keyed by
      // an old keeper there (an instance not yet on the new KEK) means another round.
      if (!(await this.#keyedOnlyBy(scope, result.head.sequence + 1, active))) {
        cursor = undefined;
        stale = false;
        continue;
      }
      if (await this.#waitingUnderOldKeeper(scope, active)) return this.#waiting(scope, false);
      return { status: "reanchored" };
    }
    return { status: "unfinished", stale };
  }

  /**
   * Whether a record made under a keeper other than the active one still waits in the scope's queue:
   * the drain is bounded and stops at a round that chains nothing (records it refuses may stand in
   * front), and once that keeper is gone the sequencer would refuse such a record, leaving an answered
   * request with no chained record. Records no configured key made are refused now as then: not counted.
   */
  async #waitingUnderOldKeeper(scope: string, active: string): Promise<boolean> {
    for await (const image of this.#repository.allPending(scope)) {
      const record = await openPending(this.#keys, image);
      if (record !== undefined && refKeeper(record.macKeyRef) !== active) return true;
    }
    return false;
  }

  #waiting(scope: string, stale: boolean): ReanchorOutcome {
    this.#logger.warn(
      "audit records under a previous KEK still wait for the sequencer; the re-wrap waits too",
      {
        scope,
      },
    );
    return { status: "unfinished", stale, waiting: true };
  }

  async #drain(scope: string): Promise<void> {
    for (let round = 0; round < MAX_CATCH_UPS; round += 1) {
      const batch = await this.#sequencer.catchUp(scope);
      if (batch.sequenced + batch.duplicates === 0) return;
    }
  }

  async #keyedOnlyBy(scope: string, from: number, keeper: string): Promise<boolean> {
    for await (const { record } of this.#repository.walk(scope, from)) {
      const ref = (record as { macKeyRef?: unknown } | null)?.macKeyRef;
      if (typeof ref !== "string" || refKeeper(ref) !== keeper) return false;
    }
    return true;
  }
}
