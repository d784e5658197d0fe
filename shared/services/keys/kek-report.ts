import type { Keyring } from "../../crypto/keyring.ts";
import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import type { KekReport } from "../../domain/rotation.ts";
import type { CheckpointRepository } from "../../storage/checkpoint-repository.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";
import { dataKeysByKek } from "./census.ts";
import { activeKekId, readRewrapState, rekeyedUnder } from "./kek-rewrap.ts";

/** Which KEKs the table depends on, and whether each may be removed from the configuration. */
export class KekReporter {
  readonly #keyring: Keyring;
  readonly #tenants: TenantRepository;
  readonly #checkpoints: CheckpointRepository;
  readonly #gate: OperationGate;

  constructor(
    keyring: Keyring,
    tenants: TenantRepository,
    checkpoints: CheckpointRepository,
    gate: OperationGate,
  ) {
    this.#keyring = keyring;
    this.#tenants = tenants;
    this.#checkpoints = checkpoints;
    this.#gate = gate;
  }

  /**
   * DEKs per KEK over every tenant, counted live, with whether each KEK may now be removed, and the
   * re-wrap's progress. A count needs the whole directory: 503 `directory_backfill_pending` until then.
   * DEKs are not all a KEK keys: authority items and audit chains are re-keyed by the re-wrap's last
   * step, so no KEK but the active one may go before a re-wrap to it has finished, even one no DEK names.
   */
  async report(ctx: RequestContext): Promise<KekReport> {
    const operation = await this.#gate.begin(ctx, "kek.read");
    const active = await activeKekId(this.#keyring);
    const configured = await this.#keyring.probe();
    const counts = await dataKeysByKek(this.#tenants);
    const registered = await this.#tenants.registeredKeks();
    const ids = [...new Set([active, ...configured, ...registered, ...Object.keys(counts)])];
    const rewrap = await readRewrapState(this.#checkpoints);
    const rekeyed = rekeyedUnder(rewrap, active);
    await operation.succeeded();
    return {
      activeKekId: active,
      keks: ids.map((kekId) => {
        const dataKeys = counts[kekId] ?? 0;
        const role = kekId === active ? "active" : configured.includes(kekId) ? "previous" : "no";
        const mayBeRemoved = role !== "active" && dataKeys === 0 && !registered.includes(kekId) && rekeyed;
        const status =
          role === "active"
            ? `active KEK: ${dataKeys} DEKs wrapped by it`
            : mayBeRemoved
              ? `nothing depends on KEK ${kekId} any more: it may be removed from the configuration`
              : dataKeys > 0
                ? `${dataKeys} DEKs still depend on KEK ${kekId}: keep it configured and run the re-wrap`
                : registered.includes(kekId)
                  ? `KEK ${kekId} is still registered: keep it until a re-wrap finishes`
                  : `tokens, bindings, seals and audit chains may still depend on KEK ${kekId}: keep it until a re-wrap to the active KEK finishes`;
        return {
          kekId,
          configured: role,
          dataKeys,
          registered: registered.includes(kekId),
          mayBeRemoved,
          status,
        };
      }),
      ...(rewrap === undefined ? {} : { rewrap }),
    };
  }
}
