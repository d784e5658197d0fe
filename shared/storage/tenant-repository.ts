import { DirectoryBackfillPendingError, StoreUnavailableError } from "../domain/errors.ts";
import type { RetiredDataKey, Tenant, WrappedDataKey } from "../domain/types.ts";
import {
  DIRECTORY_PARTITION,
  directoryEntryKey,
  KEK_REGISTRY_KEY,
  LEGACY_BACKFILL_DONE_KEY,
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
  deletedAt?: string;
  destroyedDekVersions?: number[];
  /** Seals counted under the current DEK: moved only by ADD (reserveSeals) and reset by a DEK rotation. */
  dekSeals?: number;
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
    ...(item.deletedAt === undefined ? {} : { deletedAt: item.deletedAt }),
    ...(item.destroyedDekVersions === undefined ? {} : { destroyedDekVersions: item.destroyedDekVersions }),
    dekSeals: item.dekSeals ?? 0,
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
    ...(tenant.deletedAt === undefined ? {} : { deletedAt: tenant.deletedAt }),
    ...(tenant.destroyedDekVersions === undefined
      ? {}
      : { destroyedDekVersions: [...tenant.destroyedDekVersions] }),
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
   * Whether the directory lists every tenant, so work over every tenant may rely on it. Settled by the
   * KEK registry item: none at all means no tenant was ever written; one created by this version
   * carries `directoryComplete` (see registerKek); one without it is from a table written before the
   * directory existed, complete only once the backfill (directory-backfill.ts) has run. Reads only;
   * once true it stays true, so this costs one GetItem per process.
   */
  async directoryComplete(): Promise<boolean> {
    if (this.#directoryComplete) return true;
    const registry = await this.#table.get(KEK_REGISTRY_KEY);
    if (registry === undefined || registry.directoryComplete === true) {
      this.#directoryComplete = true;
      return true;
    }
    // The marker earlier versions wrote when their backfill finished counts too, and moves into the flag.
    if ((await this.#table.get(LEGACY_BACKFILL_DONE_KEY))?.done === true) {
      await this.markDirectoryComplete();
      return true;
    }
    return false;
  }

  /** For work over every tenant: refuses with a 503 while the directory still waits for its backfill. */
  async requireDirectory(): Promise<void> {
    if (!(await this.directoryComplete())) throw new DirectoryBackfillPendingError();
  }

  /** Records, once every tenant item has its directory entry, that the directory is complete. */
  async markDirectoryComplete(): Promise<void> {
    // Conditional so that it never creates a registry item, which would claim a KEK-less table complete.
    await this.#table.update(KEK_REGISTRY_KEY, {
      update: "SET directoryComplete = :complete",
      condition: "attribute_exists(pk)",
      values: { ":complete": true },
    });
    this.#directoryComplete = true;
  }

  /** Adds a directory entry; idempotent, so the backfill and a tenant's creation may both write it. */
  async putDirectoryEntry(tenantId: string): Promise<void> {
    await this.#table.put({ ...directoryEntryKey(tenantId), tenantId });
  }

  /**
   * Returns false when the tenant already exists. The directory entry goes first, so a crash in
   * between leaves an entry without a tenant, which every reader of the directory skips.
   */
  async create(tenant: Tenant): Promise<boolean> {
    await this.putDirectoryEntry(tenant.tenantId);
    return this.#table.putIfAbsent({ ...tenantKey(tenant.tenantId), ...itemFromTenant(tenant, 1) });
  }

  /** Which of the named tenants (`*` aside) do not exist: for grants that must name real tenants. */
  async missing(tenantIds: readonly string[]): Promise<string[]> {
    const named = [...new Set(tenantIds)].filter((tenant) => tenant !== "*");
    const found = await Promise.all(named.map((tenant) => this.get(tenant)));
    return named.filter((_tenant, index) => found[index] === undefined);
  }

  async get(tenantId: string): Promise<Tenant | undefined> {
    const item = (await this.#table.get(tenantKey(tenantId))) as TenantItem | undefined;
    return item === undefined ? undefined : tenantFromItem(item);
  }

  /**
   * Replaces the tenant if it still has the revision it was read at; false when it changed since. An
   * update of every field but the seal count, so seals counted meanwhile are not lost; `resetSeals`
   * (a new current DEK) starts the count again in the same write.
   */
  replace(next: Tenant, expectedRevision: number, options: { resetSeals?: boolean } = {}): Promise<boolean> {
    const fields: Record<string, unknown> = { ...itemFromTenant(next, expectedRevision + 1) };
    delete fields.tenantId;
    if (options.resetSeals === true) fields.dekSeals = 0;
    const entries = Object.entries(fields);
    const names = Object.fromEntries(entries.map(([field], i) => [`#f${i}`, field]));
    const values: Record<string, unknown> = Object.fromEntries(
      entries.map(([, value], i) => [`:f${i}`, value]),
    );
    const update = `SET ${entries.map((_, i) => `#f${i} = :f${i}`).join(", ")}`;
    if (expectedRevision === 0) {
      return this.#table.update(tenantKey(next.tenantId), {
        update,
        condition: "attribute_exists(pk) AND attribute_not_exists(#f_revision)",
        names: { ...names, "#f_revision": "revision" },
        values,
      });
    }
    return this.#table.update(tenantKey(next.tenantId), {
      update,
      condition: "#f_revision = :expected",
      names: { ...names, "#f_revision": "revision" },
      values: { ...values, ":expected": expectedRevision },
    });
  }

  /**
   * Counts `seals` more under the tenant's current DEK with one atomic ADD, and answers with the
   * tenant as it is after it: the read a writer makes of its current DEK anyway, so counting costs no
   * extra call. Undefined when there is no such tenant.
   */
  async reserveSeals(tenantId: string, seals: number): Promise<Tenant | undefined> {
    const item = await this.#table.updateReturning(tenantKey(tenantId), {
      update: "ADD dekSeals :seals",
      condition: "attribute_exists(pk)",
      values: { ":seals": seals },
    });
    return item === undefined ? undefined : tenantFromItem(item as unknown as TenantItem);
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
   * leaves an extra name here, never a DEK whose KEK goes unlisted. The call that creates the registry
   * item also marks the directory complete, in the same conditional write.
   */
  async registerKek(kekId: string): Promise<void> {
    const values = { ":kek": new Set([kekId]) };
    // Two rounds suffice: the create fails only because another writer created the item meanwhile.
    for (let round = 0; round < 2; round += 1) {
      // The common case, one call: the registry exists.
      if (
        await this.#table.update(KEK_REGISTRY_KEY, {
          update: "ADD kekIds :kek",
          condition: "attribute_exists(pk)",
          values,
        })
      ) {
        return;
      }
      // No registry item means no tenant was ever written (each registers its KEK first), so the
      // directory, which every tenant creation writes to, is complete by construction.
      const created = await this.#table.update(KEK_REGISTRY_KEY, {
        update: "ADD kekIds :kek SET directoryComplete = :complete",
        condition: "attribute_not_exists(pk)",
        values: { ...values, ":complete": true },
      });
      if (created) {
        this.#directoryComplete = true;
        return;
      }
    }
    throw new StoreUnavailableError("the KEK registry item kept appearing and disappearing; try again");
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
