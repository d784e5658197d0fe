import type { RetiredDataKey, Tenant, WrappedDataKey } from "../domain/types.ts";
import {
  DIRECTORY_BACKFILL_KEY,
  DIRECTORY_PARTITION,
  directoryEntryKey,
  KEK_REGISTRY_KEY,
  TENANT_SORT_KEY,
  tenantKey,
} from "./keys.ts";
import type { Table } from "./table.ts";

interface TenantItem {
  tenantId: string;
  createdAt: string;
  currentDekVersion: number;
  dataKeys: WrappedDataKey[];
  retiredDataKeys?: RetiredDataKey[];
  dekRotatedAt?: string;
  revision?: number;
}

function tenantFromItem(item: TenantItem): Tenant {
  return {
    tenantId: item.tenantId,
    createdAt: item.createdAt,
    currentDekVersion: item.currentDekVersion,
    dataKeys: item.dataKeys.map((key) => ({ ...key, ciphertext: new Uint8Array(key.ciphertext) })),
    retiredDataKeys: item.retiredDataKeys ?? [],
    ...(item.dekRotatedAt === undefined ? {} : { dekRotatedAt: item.dekRotatedAt }),
    revision: item.revision ?? 0,
  };
}

function itemFromTenant(tenant: Tenant, revision: number): TenantItem {
  return {
    tenantId: tenant.tenantId,
    createdAt: tenant.createdAt,
    currentDekVersion: tenant.currentDekVersion,
    dataKeys: [...tenant.dataKeys],
    retiredDataKeys: [...(tenant.retiredDataKeys ?? [])],
    ...(tenant.dekRotatedAt === undefined ? {} : { dekRotatedAt: tenant.dekRotatedAt }),
    revision,
  };
}

/**
 * A tenant and its wrapped DEKs are one item, so creating a tenant with DEK v1, adding a DEK version,
 * retiring one or re-wrapping them is always a single conditional write.
 */
export class TenantRepository {
  readonly #table: Table;
  #directoryComplete = false;

  constructor(table: Table) {
    this.#table = table;
  }

  /**
   * Tenants created before the directory existed have no entry in it, so work over every tenant would
   * skip them. This adds an entry for every tenant item, once: one Scan for sk = "TENANT", then a
   * marker. Every step is an idempotent put, so an interrupted backfill simply runs again; tenants
   * created meanwhile write their own entry first. Call it before relying on the directory.
   */
  async ensureDirectory(): Promise<void> {
    if (this.#directoryComplete) return;
    if ((await this.#table.get(DIRECTORY_BACKFILL_KEY))?.done === true) {
      this.#directoryComplete = true;
      return;
    }
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.#table.scan({
        consistent: true,
        filter: "sk = :tenant",
        projection: "tenantId",
        values: { ":tenant": TENANT_SORT_KEY },
        startKey: start,
      });
      for (const item of page.items) {
        if (typeof item.tenantId === "string") await this.#putDirectoryEntry(item.tenantId);
      }
      start = page.lastKey;
    } while (start !== undefined);
    await this.#table.put({ ...DIRECTORY_BACKFILL_KEY, done: true });
    this.#directoryComplete = true;
  }

  async #putDirectoryEntry(tenantId: string): Promise<void> {
    await this.#table.put({ ...directoryEntryKey(tenantId), tenantId });
  }

  /**
   * Returns false when the tenant already exists. The directory entry goes first, so a crash in
   * between leaves an entry without a tenant, which every reader of the directory skips.
   */
  async create(tenant: Tenant): Promise<boolean> {
    await this.#putDirectoryEntry(tenant.tenantId);
    return this.#table.putIfAbsent({ ...tenantKey(tenant.tenantId), ...itemFromTenant(tenant, 1) });
  }

  async get(tenantId: string): Promise<Tenant | undefined> {
    const item = (await this.#table.get(tenantKey(tenantId))) as TenantItem | undefined;
    return item === undefined ? undefined : tenantFromItem(item);
  }

  /** Replaces the tenant if it still has the revision it was read at; false when it changed since. */
  replace(next: Tenant, expectedRevision: number): Promise<boolean> {
    return this.#table.put(
      { ...tenantKey(next.tenantId), ...itemFromTenant(next, expectedRevision + 1) },
      expectedRevision === 0
        ? { condition: "attribute_exists(pk) AND attribute_not_exists(revision)" }
        : { condition: "revision = :revision", values: { ":revision": expectedRevision } },
    );
  }

  /** One page of tenant ids from the directory, in order, continuing after `after`. */
  async listIds(after: string | undefined, limit: number): Promise<{ tenantIds: string[]; last?: string }> {
    const result = await this.#table.query({
      consistent: true,
      limit,
      projection: "sk",
      ...(after === undefined
        ? { keyCondition: "pk = :pk", values: { ":pk": DIRECTORY_PARTITION } }
        : {
            keyCondition: "pk = :pk AND sk > :after",
            values: { ":pk": DIRECTORY_PARTITION, ":after": after },
          }),
    });
    const tenantIds = result.items.map((item) => String(item.sk));
    const last = result.lastKey?.sk;
    return typeof last === "string" ? { tenantIds, last } : { tenantIds };
  }

  /** One page of tenants, continuing after tenant id `after`; entries whose tenant never got written are skipped. */
  async scan(after: string | undefined, limit: number): Promise<{ tenants: Tenant[]; last?: string }> {
    const page = await this.listIds(after, limit);
    const tenants = (await Promise.all(page.tenantIds.map((id) => this.get(id)))).filter(
      (tenant): tenant is Tenant => tenant !== undefined,
    );
    return page.last === undefined ? { tenants } : { tenants, last: page.last };
  }

  /**
   * Records that a KEK wraps DEKs in this table. Written before the tenant, so a crash in between
   * leaves an extra name here, never a DEK whose KEK goes unlisted.
   */
  async registerKek(kekId: string): Promise<void> {
    await this.#table.update(KEK_REGISTRY_KEY, {
      update: "ADD kekIds :kek",
      values: { ":kek": new Set([kekId]) },
    });
  }

  /** Forgets a KEK once a full scan has shown that no DEK here is wrapped by it any more. */
  async deregisterKek(kekId: string): Promise<void> {
    await this.#table.update(KEK_REGISTRY_KEY, {
      update: "DELETE kekIds :kek",
      values: { ":kek": new Set([kekId]) },
    });
  }

  /** The KEKs that have wrapped DEKs here; also serves as the store's liveness probe. */
  async registeredKeks(): Promise<string[]> {
    const kekIds = (await this.#table.get(KEK_REGISTRY_KEY))?.kekIds as Set<string> | undefined;
    return kekIds === undefined ? [] : [...kekIds].sort();
  }
}
