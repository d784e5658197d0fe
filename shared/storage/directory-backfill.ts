import { TENANT_SORT_KEY } from "./keys.ts";
import type { Table } from "./table.ts";
import type { TenantRepository } from "./tenant-repository.ts";

/**
 * Adds a directory entry for every tenant item of a table written before the tenant directory existed,
 * then marks the directory complete. It is the only Scan of tenant items, and only the rotation
 * function (its scheduled run) and `npm start` (before it serves) are given one: requests never scan,
 * they answer `directory_backfill_pending` until this has run. A table whose directory is complete
 * (every table this version created) costs one GetItem and no Scan. Every step is an idempotent put,
 * so an interrupted backfill simply runs again; tenants created meanwhile write their own entry first.
 */
export class DirectoryBackfill {
  readonly #table: Table;
  readonly #tenants: TenantRepository;

  constructor(table: Table, tenants: TenantRepository) {
    this.#table = table;
    this.#tenants = tenants;
  }

  /** Whether it had to Scan, and how many tenant items it found. */
  async run(): Promise<{ readonly scanned: boolean; readonly tenants: number }> {
    if (await this.#tenants.directoryComplete()) return { scanned: false, tenants: 0 };
    let tenants = 0;
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
        if (typeof item.tenantId !== "string") continue;
        await this.#tenants.putDirectoryEntry(item.tenantId);
        tenants += 1;
      }
      start = page.lastKey;
    } while (start !== undefined);
    await this.#tenants.markDirectoryComplete();
    return { scanned: true, tenants };
  }
}
