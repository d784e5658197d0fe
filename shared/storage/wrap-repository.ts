import type { ItemSeal } from "../domain/item-integrity.ts";
import type { Page } from "../domain/types.ts";
import type { SealedPayload, WrapRecord } from "../domain/wrapping.ts";
import { resealItem } from "./item-reseal.ts";
import { WRAP_DIRECTORY_PARTITION, wrapDirectoryKey, wrapKey } from "./keys.ts";
import { queryPage, type Table } from "./table.ts";

/** A wrap item as read; the table is not trusted, so each part may be missing. */
export interface StoredWrap {
  readonly record?: WrapRecord;
  readonly seal?: ItemSeal;
  /** Gone once unwrapped: the unwrap removes it in the same conditional write that marks the use. */
  readonly payload?: SealedPayload;
  readonly usedAt?: string;
}

function recordOf(item: Record<string, unknown>): WrapRecord | undefined {
  const { wrapId, secretHash, scope, kind, creator, createdAt, expiresAt } = item;
  if (
    typeof wrapId !== "string" ||
    !(secretHash instanceof Uint8Array) ||
    typeof scope !== "string" ||
    (kind !== "secret.read" && kind !== "token.create") ||
    typeof creator !== "string" ||
    typeof createdAt !== "string" ||
    typeof expiresAt !== "string"
  ) {
    return undefined;
  }
  return { wrapId, secretHash: new Uint8Array(secretHash), scope, kind, creator, createdAt, expiresAt };
}

function payloadOf(item: Record<string, unknown>): SealedPayload | undefined {
  const { envelope, kekId, wrappedKey } = item;
  if (!(envelope instanceof Uint8Array) || typeof kekId !== "string" || !(wrappedKey instanceof Uint8Array)) {
    return undefined;
  }
  return { envelope: new Uint8Array(envelope), kekId, wrappedKey: new Uint8Array(wrappedKey) };
}

export class WrapRepository {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  async create(record: WrapRecord, payload: SealedPayload, seal: ItemSeal): Promise<boolean> {
    // The directory entry first: no live wrap exists that the KEK re-wrap cannot find.
    await this.#table.put({ ...wrapDirectoryKey(record.expiresAt, record.wrapId), wrapId: record.wrapId });
    return this.#table.putIfAbsent({
      ...wrapKey(record.wrapId),
      ...record,
      ...payload,
      mac: seal.mac,
      macKeyRef: seal.macKeyRef,
    });
  }

  async get(wrapId: string): Promise<StoredWrap | undefined> {
    const item = await this.#table.get(wrapKey(wrapId));
    if (item === undefined) return undefined;
    const record = recordOf(item);
    const payload = payloadOf(item);
    const { mac, macKeyRef, usedAt } = item;
    return {
      ...(record === undefined ? {} : { record }),
      ...(payload === undefined ? {} : { payload }),
      ...(typeof mac === "string" && typeof macKeyRef === "string" ? { seal: { mac, macKeyRef } } : {}),
      ...(typeof usedAt === "string" ? { usedAt } : {}),
    };
  }

  /** One page of the ids of wraps expiring after `after` (an ISO time), soonest first. */
  async listLiveIds(after: string, limit: number, cursor?: string): Promise<Page<string>> {
    const page = await queryPage(
      this.#table,
      {
        keyCondition: "pk = :pk AND sk > :after",
        projection: "wrapId",
        values: { ":pk": WRAP_DIRECTORY_PARTITION, ":after": after },
      },
      { partition: WRAP_DIRECTORY_PARTITION, sortKeyPrefix: "", limit, cursor },
    );
    return { ...page, items: page.items.map((item) => String(item.wrapId)) };
  }

  /**
   * Re-keys a wrap's MAC over the content its old MAC verified and, while it still holds its payload,
   * puts the payload's data key re-wrapped in place of the one wrapped by `fromKekId`. False when the
   * item changed since (unwrapped, say).
   */
  reseal(
    wrapId: string,
    sealedAs: string,
    seal: ItemSeal,
    payload?: { readonly fromKekId: string; readonly kekId: string; readonly wrappedKey: Uint8Array },
  ): Promise<boolean> {
    if (payload === undefined) {
      return resealItem(this.#table, wrapKey(wrapId), sealedAs, seal, {
        condition: "attribute_not_exists(wrappedKey)",
      });
    }
    return resealItem(this.#table, wrapKey(wrapId), sealedAs, seal, {
      set: { kekId: payload.kekId, wrappedKey: payload.wrappedKey },
      condition: "kekId = :fromKekId AND attribute_not_exists(usedAt)",
      values: { ":fromKekId": payload.fromKekId },
    });
  }

  /**
   * Marks the item used and removes its payload, only if nobody has yet and its MAC is the one the
   * caller verified: of concurrent unwraps exactly one gets true. `why` says what the use was.
   */
  consume(wrapId: string, sealedAs: string, usedAt: string, why: "unwrapped" | "expired"): Promise<boolean> {
    return this.#table.update(wrapKey(wrapId), {
      update: "SET usedAt = :usedAt, usedFor = :why REMOVE envelope, wrappedKey",
      condition: "attribute_exists(pk) AND attribute_not_exists(usedAt) AND mac = :sealedAs",
      values: { ":usedAt": usedAt, ":why": why, ":sealedAs": sealedAs },
    });
  }
}
