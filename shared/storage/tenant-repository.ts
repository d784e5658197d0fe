import { PutCommand, QueryCommand, ScanCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { RetiredDataKey, Tenant, WrappedDataKey } from "../domain/types.ts";
import {
  DIRECTORY_BACKFILL_KEY,
  DIRECTORY_PARTITION,
  directoryEntryKey,
  KEK_REGISTRY_KEY,
  TENANT_SORT_KEY,
  tenantKey,
} from "./keys.ts";
import { getItem, putIfAbsent, send, type Table, writeIf } from "./table.ts";

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
  #directoryComplete = false;

  constructor(private readonly table: Table) {}

  /**
   * Tenants created before the directory existed have no entry in it, so work over every tenant would
   * skip them. This adds an entry for every tenant item, once: one Scan for sk = "TENANT", then a
   * marker. Every step is an idempotent put, so an interrupted backfill simply runs again; tenants
   * created meanwhile write their own entry first. Call it before relying on the directory.
   */
  async ensureDirectory(): Promise<void> {
    if (this.#directoryComplete) return;
    if ((await getItem(this.table, DIRECTORY_BACKFILL_KEY))?.done === true) {
      this.#directoryComplete = true;
      return;
    }
    let start: Record<string, unknown> | undefined;
    do {
      const page = await send("Scan", () =>
        this.table.doc.send(
          new ScanCommand({
            TableName: this.table.name,
            ConsistentRead: true,
            FilterExpression: "sk = :tenant",
            ProjectionExpression: "tenantId",
            ExpressionAttributeValues: { ":tenant": TENANT_SORT_KEY },
            ...(start === undefined ? {} : { ExclusiveStartKey: start }),
          }),
        ),
      );
      for (const item of page.Items ?? []) {
        if (typeof item.tenantId === "string") await this.#putDirectoryEntry(item.tenantId);
      }
      start = page.LastEvaluatedKey;
    } while (start !== undefined);
    await send("PutItem", () =>
      this.table.doc.send(
        new PutCommand({ TableName: this.table.name, Item: { ...DIRECTORY_BACKFILL_KEY, done: true } }),
      ),
    );
    this.#directoryComplete = true;
  }

  async #putDirectoryEntry(tenantId: string): Promise<void> {
    await send("PutItem", () =>
      this.table.doc.send(
        new PutCommand({
          TableName: this.table.name,
          Item: { ...directoryEntryKey(tenantId), tenantId },
        }),
      ),
    );
  }

  /**
   * Returns false when the tenant already exists. The directory entry goes first, so a crash in
   * between leaves an entry without a tenant, which every reader of the directory skips.
   */
  async create(tenant: Tenant): Promise<boolean> {
    await this.#putDirectoryEntry(tenant.tenantId);
    return putIfAbsent(this.table, { ...tenantKey(tenant.tenantId), ...itemFromTenant(tenant, 1) });
  }

  async get(tenantId: string): Promise<Tenant | undefined> {
    const item = (await getItem(this.table, tenantKey(tenantId))) as TenantItem | undefined;
    return item === undefined ? undefined : tenantFromItem(item);
  }

  /** Replaces the tenant if it still has the revision it was read at; false when it changed since. */
  replace(next: Tenant, expectedRevision: number): Promise<boolean> {
    return writeIf("PutItem", () =>
      this.table.doc.send(
        new PutCommand({
          TableName: this.table.name,
          Item: { ...tenantKey(next.tenantId), ...itemFromTenant(next, expectedRevision + 1) },
          ...(expectedRevision === 0
            ? { ConditionExpression: "attribute_exists(pk) AND attribute_not_exists(revision)" }
            : {
                ConditionExpression: "revision = :revision",
                ExpressionAttributeValues: { ":revision": expectedRevision },
              }),
        }),
      ),
    );
  }

  /** One page of tenant ids from the directory, in order, continuing after `after`. */
  async listIds(after: string | undefined, limit: number): Promise<{ tenantIds: string[]; last?: string }> {
    const result = await send("Query", () =>
      this.table.doc.send(
        new QueryCommand({
          TableName: this.table.name,
          ConsistentRead: true,
          Limit: limit,
          ProjectionExpression: "sk",
          ...(after === undefined
            ? {
                KeyConditionExpression: "pk = :pk",
                ExpressionAttributeValues: { ":pk": DIRECTORY_PARTITION },
              }
            : {
                KeyConditionExpression: "pk = :pk AND sk > :after",
                ExpressionAttributeValues: { ":pk": DIRECTORY_PARTITION, ":after": after },
              }),
        }),
      ),
    );
    const tenantIds = (result.Items ?? []).map((item) => String(item.sk));
    const last = result.LastEvaluatedKey?.sk;
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
    await send("UpdateItem", () =>
      this.table.doc.send(
        new UpdateCommand({
          TableName: this.table.name,
          Key: KEK_REGISTRY_KEY,
          UpdateExpression: "ADD kekIds :kek",
          ExpressionAttributeValues: { ":kek": new Set([kekId]) },
        }),
      ),
    );
  }

  /** Forgets a KEK once a full scan has shown that no DEK here is wrapped by it any more. */
  async deregisterKek(kekId: string): Promise<void> {
    await send("UpdateItem", () =>
      this.table.doc.send(
        new UpdateCommand({
          TableName: this.table.name,
          Key: KEK_REGISTRY_KEY,
          UpdateExpression: "DELETE kekIds :kek",
          ExpressionAttributeValues: { ":kek": new Set([kekId]) },
        }),
      ),
    );
  }

  /** The KEKs that have wrapped DEKs here; also serves as the store's liveness probe. */
  async registeredKeks(): Promise<string[]> {
    const kekIds = (await getItem(this.table, KEK_REGISTRY_KEY))?.kekIds as Set<string> | undefined;
    return kekIds === undefined ? [] : [...kekIds].sort();
  }
}
