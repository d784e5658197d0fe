import type { ItemSeal } from "../domain/item-integrity.ts";
import { type BindingRecord, type Page, ROLES, type Role } from "../domain/types.ts";
import type { Item } from "./item-reader.ts";
import { resealItem } from "./item-reseal.ts";
import { BINDINGS_PARTITION, bindingKey } from "./keys.ts";
import { queryPage, type Table } from "./table.ts";

/**
 * A binding item as read. As with tokens, the table is not trusted: `record` is missing when the item
 * is not binding-shaped, `seal` when it carries no MAC, and either way the caller refuses it.
 */
export interface StoredBinding {
  readonly record?: BindingRecord;
  readonly seal?: ItemSeal;
}

/** Only the fields' types are checked here; whether they are the ones an admin bound is the MAC's to say. */
function recordOf(item: Item): BindingRecord | undefined {
  const { bindingId, principalArn, role, tenants, createdAt, deletedAt } = item;
  if (
    typeof bindingId !== "string" ||
    typeof principalArn !== "string" ||
    typeof role !== "string" ||
    !(ROLES as readonly string[]).includes(role) ||
    !Array.isArray(tenants) ||
    !tenants.every((tenant) => typeof tenant === "string") ||
    typeof createdAt !== "string" ||
    (deletedAt !== undefined && typeof deletedAt !== "string")
  ) {
    return undefined;
  }
  return {
    bindingId,
    principalArn,
    role: role as Role,
    tenants: tenants as string[],
    createdAt,
    ...(deletedAt === undefined ? {} : { deletedAt }),
  };
}

function storedOf(item: Item): StoredBinding {
  const record = recordOf(item);
  const { mac, macKeyRef } = item;
  return {
    ...(record === undefined ? {} : { record }),
    ...(typeof mac === "string" && typeof macKeyRef === "string" ? { seal: { mac, macKeyRef } } : {}),
  };
}

/** Bindings by id, each with the seal the service made over every field. */
export class BindingRepository {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  /**
   * Writes a binding where none is, or over the item the caller read (`replacing`: a deleted binding,
   * or an item that failed its check), only as it was read, so no concurrent change slips under it.
   * False when the item is there (or changed since it was read).
   */
  create(
    record: BindingRecord,
    seal: ItemSeal,
    replacing?: { readonly mac?: string | undefined },
  ): Promise<boolean> {
    const item = {
      ...bindingKey(record.bindingId),
      ...record,
      tenants: [...record.tenants],
      mac: seal.mac,
      macKeyRef: seal.macKeyRef,
    };
    if (replacing === undefined) return this.#table.putIfAbsent(item);
    if (replacing.mac === undefined) {
      return this.#table.put(item, { condition: "attribute_exists(pk) AND attribute_not_exists(mac)" });
    }
    return this.#table.put(item, { condition: "mac = :replacing", values: { ":replacing": replacing.mac } });
  }

  async get(bindingId: string): Promise<StoredBinding | undefined> {
    const item = await this.#table.get(bindingKey(bindingId));
    return item === undefined ? undefined : storedOf(item);
  }

  /** One page of binding items, deleted ones included: the caller verifies each before it shows any. */
  async list(limit: number, cursor?: string): Promise<Page<StoredBinding & { readonly sk: string }>> {
    const page = await queryPage(
      this.#table,
      { keyCondition: "pk = :pk", values: { ":pk": BINDINGS_PARTITION } },
      { partition: BINDINGS_PARTITION, sortKeyPrefix: "", limit, cursor },
    );
    return { ...page, items: page.items.map((item) => ({ ...storedOf(item), sk: String(item.sk) })) };
  }

  /** Re-keys a binding's MAC over the content its old MAC verified; false when the item changed since. */
  reseal(bindingId: string, sealedAs: string, seal: ItemSeal): Promise<boolean> {
    return resealItem(this.#table, bindingKey(bindingId), sealedAs, seal);
  }

  /**
   * Sets `deletedAt` and the seal made over the deleted binding, only over the item whose MAC the caller
   * verified (`sealedAs`). False when it is gone, already deleted, or was changed since it was read.
   */
  markDeleted(bindingId: string, deletedAt: string, seal: ItemSeal, sealedAs: string): Promise<boolean> {
    return this.#table.update(bindingKey(bindingId), {
      update: "SET deletedAt = :deletedAt, mac = :mac, macKeyRef = :macKeyRef",
      condition: "attribute_exists(pk) AND attribute_not_exists(deletedAt) AND mac = :sealedAs",
      values: {
        ":deletedAt": deletedAt,
        ":mac": seal.mac,
        ":macKeyRef": seal.macKeyRef,
        ":sealedAs": sealedAs,
      },
    });
  }
}
