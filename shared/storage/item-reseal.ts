import type { ItemSeal } from "../domain/item-integrity.ts";
import type { Key, Table } from "./table.ts";

/**
 * Replaces an authority item's MAC and key reference, only while its MAC is still `sealedAs`: the one
 * the caller verified over the content it read. A writer that changed the item meanwhile changed its
 * MAC too, so it wins; a table writer who edited the content but kept the MAC leaves an item whose
 * new MAC covers the content the caller verified, not theirs, so it still fails. `path` is where the
 * MAC sits in the item (a deletion certificate keeps it inside `certificate`).
 */
export function resealItem(
  table: Table,
  key: Key,
  sealedAs: string,
  seal: ItemSeal,
  options: {
    readonly path?: string;
    readonly set?: Record<string, unknown>;
    readonly condition?: string;
    readonly values?: Record<string, unknown>;
  } = {},
): Promise<boolean> {
  const at = options.path === undefined ? "" : `#path.`;
  const extra = Object.keys(options.set ?? {});
  const update = [
    `${at}mac = :mac`,
    `${at}macKeyRef = :macKeyRef`,
    ...extra.map((field) => `${field} = :${field}`),
  ];
  return table.update(key, {
    update: `SET ${update.join(", ")}`,
    condition: `attribute_exists(pk) AND ${at}mac = :sealedAs${options.condition === undefined ? "" : ` AND ${options.condition}`}`,
    ...(options.path === undefined ? {} : { names: { "#path": options.path } }),
    values: {
      ":mac": seal.mac,
      ":macKeyRef": seal.macKeyRef,
      ":sealedAs": sealedAs,
      ...Object.fromEntries(extra.map((field) => [`:${field}`, options.set?.[field]])),
      ...options.values,
    },
  });
}
