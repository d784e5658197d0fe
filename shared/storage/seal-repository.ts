import type { ItemSeal } from "../domain/item-integrity.ts";
import type { SealRecord } from "../domain/seal.ts";
import { resealItem } from "./item-reseal.ts";
import { sealKey } from "./keys.ts";
import type { Table } from "./table.ts";

/**
 * A seal item as read. The table is not trusted: `record` is missing when the item is not seal-shaped,
 * `seal` when it carries no MAC; the caller counts either as sealed.
 */
export interface StoredSeal {
  readonly record?: SealRecord;
  readonly seal?: ItemSeal;
}

function recordOf(item: Record<string, unknown>): SealRecord | undefined {
  const { scope, sealed, reason, changedBy, changedAt, unsealRequestedBy, revision } = item;
  if (
    typeof scope !== "string" ||
    typeof sealed !== "boolean" ||
    typeof reason !== "string" ||
    typeof changedBy !== "string" ||
    typeof changedAt !== "string" ||
    (unsealRequestedBy !== undefined && typeof unsealRequestedBy !== "string") ||
    typeof revision !== "number"
  ) {
    return undefined;
  }
  return {
    scope,
    sealed,
    reason,
    changedBy,
    changedAt,
    revision,
    ...(unsealRequestedBy === undefined ? {} : { unsealRequestedBy }),
  };
}

/** Kill-switch items: one per sealed-at-least-once tenant, and one for the global seal. */
export class SealRepository {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  /** A point read through the table's coalescing reader, so it shares the request's round trip. */
  async get(scope: string): Promise<StoredSeal | undefined> {
    const item = await this.#table.get(sealKey(scope));
    if (item === undefined) return undefined;
    const record = recordOf(item);
    const { mac, macKeyRef } = item;
    return {
      ...(record === undefined ? {} : { record }),
      ...(typeof mac === "string" && typeof macKeyRef === "string" ? { seal: { mac, macKeyRef } } : {}),
    };
  }

  /** Re-keys a seal item's MAC over the content its old MAC verified; false when the item changed since. */
  reseal(scope: string, sealedAs: string, seal: ItemSeal): Promise<boolean> {
    return resealItem(this.#table, sealKey(scope), sealedAs, seal);
  }

  /**
   * Writes the record over exactly the item the caller read: none (`replaces` undefined), one without
   * a MAC (`null`), or the one with that MAC. False when another change got in first.
   */
  put(record: SealRecord, seal: ItemSeal, replaces: string | null | undefined): Promise<boolean> {
    const item = { ...sealKey(record.scope), ...record, mac: seal.mac, macKeyRef: seal.macKeyRef };
    if (replaces === undefined) return this.#table.putIfAbsent(item);
    if (replaces === null) {
      return this.#table.put(item, { condition: "attribute_exists(pk) AND attribute_not_exists(mac)" });
    }
    return this.#table.put(item, { condition: "mac = :replaces", values: { ":replaces": replaces } });
  }
}
