import type { BreakGlassRecord } from "../domain/break-glass.ts";
import type { ItemSeal } from "../domain/item-integrity.ts";
import type { Page } from "../domain/types.ts";
import { resealItem } from "./item-reseal.ts";
import { BREAK_GLASS_DIRECTORY_PARTITION, breakGlassDirectoryKey, breakGlassKey } from "./keys.ts";
import { queryPage, type Table } from "./table.ts";

const STATUSES = ["pending", "approved", "active", "revoked"] as const;
const optionalString = (value: unknown) => value === undefined || typeof value === "string";

function recordOf(item: Record<string, unknown>): BreakGlassRecord | undefined {
  const { id, tenantId, requester, reason, durationMinutes, status, createdAt, credentialHash } = item;
  if (
    typeof id !== "string" ||
    typeof tenantId !== "string" ||
    typeof requester !== "string" ||
    typeof reason !== "string" ||
    typeof durationMinutes !== "number" ||
    !(STATUSES as readonly unknown[]).includes(status) ||
    typeof createdAt !== "string" ||
    !(credentialHash === undefined || credentialHash instanceof Uint8Array) ||
    !["approver", "approvedAt", "expiresAt", "revokedAt", "revokedBy"].every((field) =>
      optionalString(item[field]),
    )
  ) {
    return undefined;
  }
  const optional = Object.fromEntries(
    ["approver", "approvedAt", "expiresAt", "revokedAt", "revokedBy"]
      .filter((field) => item[field] !== undefined)
      .map((field) => [field, item[field] as string]),
  );
  return {
    id,
    tenantId,
    requester,
    reason,
    durationMinutes,
    status: status as BreakGlassRecord["status"],
    createdAt,
    ...optional,
    ...(credentialHash === undefined ? {} : { credentialHash: new Uint8Array(credentialHash) }),
  };
}

export interface StoredBreakGlass {
  readonly record?: BreakGlassRecord;
  readonly seal?: ItemSeal;
}

export class BreakGlassRepository {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  async get(id: string): Promise<StoredBreakGlass | undefined> {
    const item = await this.#table.get(breakGlassKey(id));
    if (item === undefined) return undefined;
    const record = recordOf(item);
    const { mac, macKeyRef } = item;
    return {
      ...(record === undefined ? {} : { record }),
      ...(typeof mac === "string" && typeof macKeyRef === "string" ? { seal: { mac, macKeyRef } } : {}),
    };
  }

  /** Writes the record over exactly the item whose MAC the caller verified, or a new one (`replaces` undefined). */
  async put(record: BreakGlassRecord, seal: ItemSeal, replaces?: string): Promise<boolean> {
    const item = { ...breakGlassKey(record.id), ...record, mac: seal.mac, macKeyRef: seal.macKeyRef };
    if (replaces === undefined) {
      // The directory entry first: no request exists that the KEK re-wrap cannot find to re-key.
      await this.#table.put({ ...breakGlassDirectoryKey(record.id), id: record.id });
      return this.#table.putIfAbsent(item);
    }
    return this.#table.put(item, { condition: "mac = :replaces", values: { ":replaces": replaces } });
  }

  /** One page of break-glass request ids from the directory, in id order. */
  async listIds(limit: number, cursor?: string): Promise<Page<string>> {
    const page = await queryPage(
      this.#table,
      { keyCondition: "pk = :pk", projection: "sk", values: { ":pk": BREAK_GLASS_DIRECTORY_PARTITION } },
      { partition: BREAK_GLASS_DIRECTORY_PARTITION, sortKeyPrefix: "", limit, cursor },
    );
    return { ...page, items: page.items.map((item) => String(item.sk)) };
  }

  /** Re-keys a request's MAC over the content its old MAC verified; false when the item changed since. */
  reseal(id: string, sealedAs: string, seal: ItemSeal): Promise<boolean> {
    return resealItem(this.#table, breakGlassKey(id), sealedAs, seal);
  }
}
