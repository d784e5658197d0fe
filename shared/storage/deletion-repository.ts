import type { DeletionCertificate } from "../domain/deletion-certificate.ts";
import type { ItemSeal } from "../domain/item-integrity.ts";
import { resealItem } from "./item-reseal.ts";
import {
  deletionCertificateKey,
  HEAD_PREFIX,
  TENANT_SORT_KEY,
  tenantPartition,
  VERSION_PREFIX,
} from "./keys.ts";
import type { Table } from "./table.ts";

/** What kind of item a sort key in a tenant partition is, for a deletion's counts. */
export type PartitionItemKind = "secrets" | "versions" | "other";

export function kindOfSortKey(sk: string): PartitionItemKind {
  if (sk.startsWith(HEAD_PREFIX)) return "secrets";
  if (sk.startsWith(VERSION_PREFIX)) return "versions";
  return "other";
}

/**
 * The storage side of a tenant deletion: the partition's sort keys page by page (the tenant item, the
 * tombstone, excepted), removal one item at a time, and the certificate, kept under META so that it
 * outlives the partition it describes.
 */
export class DeletionRepository {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  /** One page of the partition's sort keys after `after`, in key order, without reading any item's contents. */
  async sortKeys(
    tenantId: string,
    after: string | undefined,
    limit: number,
  ): Promise<{ keys: string[]; last?: string }> {
    const pk = tenantPartition(tenantId);
    const output = await this.#table.query({
      consistent: true,
      limit,
      projection: "sk",
      ...(after === undefined
        ? { keyCondition: "pk = :pk", values: { ":pk": pk } }
        : { keyCondition: "pk = :pk AND sk > :after", values: { ":pk": pk, ":after": after } }),
    });
    const keys = output.items.map((item) => String(item.sk)).filter((sk) => sk !== TENANT_SORT_KEY);
    const last = output.lastKey?.sk;
    return typeof last === "string" ? { keys, last } : { keys };
  }

  async remove(tenantId: string, sk: string): Promise<void> {
    if (sk === TENANT_SORT_KEY) return;
    await this.#table.delete({ pk: tenantPartition(tenantId), sk });
  }

  async getCertificate(tenantId: string): Promise<DeletionCertificate | undefined> {
    const item = await this.#table.get(deletionCertificateKey(tenantId));
    return item === undefined ? undefined : (item.certificate as DeletionCertificate);
  }

  /** Re-keys a certificate's MAC over the content its old MAC verified; false when it changed since. */
  resealCertificate(tenantId: string, sealedAs: string, seal: ItemSeal): Promise<boolean> {
    return resealItem(this.#table, deletionCertificateKey(tenantId), sealedAs, seal, { path: "certificate" });
  }

  /** Stores the first certificate made for the tenant; a resumed deletion keeps the one already there. */
  putCertificate(certificate: DeletionCertificate): Promise<boolean> {
    return this.#table.putIfAbsent({ ...deletionCertificateKey(certificate.tenantId), certificate });
  }
}
