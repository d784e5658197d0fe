import {
  DEK_AGE_SCAN_KEY,
  DUE_SCAN_KEY,
  deletionSweepKey,
  KEK_REWRAP_KEY,
  PENDING_SWEEPS_KEY,
  sweepKey,
} from "./keys.ts";
import type { Key, Table } from "./table.ts";

/**
 * A piece of rotation work with a checkpoint: a tenant's sweep or deletion, the KEK re-wrap, the due
 * scan, or the DEK age scan.
 */
export type CheckpointedWork =
  | { readonly sweepOf: string }
  | { readonly deletionOf: string }
  | "kek-rewrap"
  | "due-scan"
  | "dek-age-scan";

function keyOf(work: CheckpointedWork): Key {
  if (work === "kek-rewrap") return KEK_REWRAP_KEY;
  if (work === "due-scan") return DUE_SCAN_KEY;
  if (work === "dek-age-scan") return DEK_AGE_SCAN_KEY;
  if ("deletionOf" in work) return deletionSweepKey(work.deletionOf);
  return sweepKey(work.sweepOf);
}

/**
 * Checkpoints of long-running rotation work (a tenant's re-encryption sweep, the KEK re-wrap, the scan
 * for due secrets). Each is one item holding the work's state and a lease: whoever holds the lease may
 * write the checkpoint, so two runners (the timer and an on-demand run, or two Lambda invocations)
 * never interleave checkpoints, and a runner that died simply lets its lease lapse.
 */
export class CheckpointRepository {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  async get<S>(work: CheckpointedWork): Promise<S | undefined> {
    return (await this.#table.get(keyOf(work)))?.state as S | undefined;
  }

  /** Starts (or restarts) a piece of work: any runner holding the old lease loses it at once. */
  async start<S extends object>(work: CheckpointedWork, state: S): Promise<void> {
    await this.#table.put({ ...keyOf(work), state });
  }

  /** Takes the lease if it is free, lapsed, or already ours. */
  acquire(work: CheckpointedWork, owner: string, nowMs: number, ttlMs: number): Promise<boolean> {
    return this.#table.update(keyOf(work), {
      update: "SET leaseOwner = :owner, leaseUntil = :until",
      condition:
        "attribute_exists(#state) AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now OR leaseOwner = :owner)",
      names: { "#state": "state" },
      values: { ":owner": owner, ":until": nowMs + ttlMs, ":now": nowMs },
    });
  }

  /** Writes a checkpoint and extends the lease; false when the lease was lost (the work was restarted). */
  checkpoint<S extends object>(
    work: CheckpointedWork,
    owner: string,
    state: S,
    leaseUntilMs: number,
  ): Promise<boolean> {
    return this.#table.update(keyOf(work), {
      update: "SET #state = :state, leaseUntil = :until",
      condition: "leaseOwner = :owner",
      names: { "#state": "state" },
      values: { ":state": state, ":owner": owner, ":until": leaseUntilMs },
    });
  }

  /** Gives the lease up so the next runner need not wait for it to lapse. */
  async release(work: CheckpointedWork, owner: string): Promise<void> {
    await this.#table.update(keyOf(work), {
      update: "REMOVE leaseOwner, leaseUntil",
      condition: "leaseOwner = :owner",
      values: { ":owner": owner },
    });
  }

  /** Tenants with a re-encryption sweep still to finish, so runners need not scan for them. */
  async pendingSweeps(): Promise<string[]> {
    const ids = (await this.#table.get(PENDING_SWEEPS_KEY))?.tenantIds as Set<string> | undefined;
    return ids === undefined ? [] : [...ids].sort();
  }

  async addPendingSweep(tenantId: string): Promise<void> {
    await this.#updateSet("ADD", tenantId);
  }

  async removePendingSweep(tenantId: string): Promise<void> {
    await this.#updateSet("DELETE", tenantId);
  }

  async #updateSet(operation: "ADD" | "DELETE", tenantId: string): Promise<void> {
    await this.#table.update(PENDING_SWEEPS_KEY, {
      update: `${operation} tenantIds :ids`,
      values: { ":ids": new Set([tenantId]) },
    });
  }
}
