import { PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { getItem, type Key, send, type Table, writeIf } from "./table.ts";

export const sweepKey = (tenantId: string): Key => ({ pk: `T#${tenantId}`, sk: "SWEEP" });
export const KEK_REWRAP_KEY: Key = { pk: "META", sk: "KEK-REWRAP" };
export const DUE_SCAN_KEY: Key = { pk: "META", sk: "DUE-SCAN" };
const PENDING_SWEEPS_KEY: Key = { pk: "META", sk: "SWEEPS" };

/**
 * Checkpoints of long-running rotation work (a tenant's re-encryption sweep, the KEK re-wrap, the scan
 * for due secrets). Each is one item holding the work's state and a lease: whoever holds the lease may
 * write the checkpoint, so two runners (the timer and an on-demand run, or two Lambda invocations)
 * never interleave checkpoints, and a runner that died simply lets its lease lapse.
 */
export class RotationRepository {
  constructor(private readonly table: Table) {}

  async get<S>(key: Key): Promise<S | undefined> {
    return (await getItem(this.table, key))?.state as S | undefined;
  }

  /** Starts (or restarts) a piece of work: any runner holding the old lease loses it at once. */
  async start<S extends object>(key: Key, state: S): Promise<void> {
    await send("PutItem", () =>
      this.table.doc.send(new PutCommand({ TableName: this.table.name, Item: { ...key, state } })),
    );
  }

  /** Takes the lease if it is free, lapsed, or already ours. */
  acquire(key: Key, owner: string, nowMs: number, ttlMs: number): Promise<boolean> {
    return writeIf("UpdateItem", () =>
      this.table.doc.send(
        new UpdateCommand({
          TableName: this.table.name,
          Key: key,
          UpdateExpression: "SET leaseOwner = :owner, leaseUntil = :until",
          ConditionExpression:
            "attribute_exists(#state) AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now OR leaseOwner = :owner)",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: { ":owner": owner, ":until": nowMs + ttlMs, ":now": nowMs },
        }),
      ),
    );
  }

  /** Writes a checkpoint and extends the lease; false when the lease was lost (the work was restarted). */
  checkpoint<S extends object>(key: Key, owner: string, state: S, leaseUntilMs: number): Promise<boolean> {
    return writeIf("UpdateItem", () =>
      this.table.doc.send(
        new UpdateCommand({
          TableName: this.table.name,
          Key: key,
          UpdateExpression: "SET #state = :state, leaseUntil = :until",
          ConditionExpression: "leaseOwner = :owner",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: { ":state": state, ":owner": owner, ":until": leaseUntilMs },
        }),
      ),
    );
  }

  /** Gives the lease up so the next runner need not wait for it to lapse. */
  async release(key: Key, owner: string): Promise<void> {
    await writeIf("UpdateItem", () =>
      this.table.doc.send(
        new UpdateCommand({
          TableName: this.table.name,
          Key: key,
          UpdateExpression: "REMOVE leaseOwner, leaseUntil",
          ConditionExpression: "leaseOwner = :owner",
          ExpressionAttributeValues: { ":owner": owner },
        }),
      ),
    );
  }

  /** Tenants with a re-encryption sweep still to finish, so runners need not scan for them. */
  async pendingSweeps(): Promise<string[]> {
    const ids = (await getItem(this.table, PENDING_SWEEPS_KEY))?.tenantIds as Set<string> | undefined;
    return ids === undefined ? [] : [...ids].sort();
  }

  async addPendingSweep(tenantId: string): Promise<void> {
    await this.#updateSet("ADD", tenantId);
  }

  async removePendingSweep(tenantId: string): Promise<void> {
    await this.#updateSet("DELETE", tenantId);
  }

  async #updateSet(operation: "ADD" | "DELETE", tenantId: string): Promise<void> {
    await send("UpdateItem", () =>
      this.table.doc.send(
        new UpdateCommand({
          TableName: this.table.name,
          Key: PENDING_SWEEPS_KEY,
          UpdateExpression: `${operation} tenantIds :ids`,
          ExpressionAttributeValues: { ":ids": new Set([tenantId]) },
        }),
      ),
    );
  }
}
