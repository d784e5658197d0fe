import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { Tenant, WrappedDataKey } from "../domain/types.ts";
import { getItem, putIfAbsent, send, type Table } from "./table.ts";

const tenantKey = (tenantId: string) => ({ pk: `T#${tenantId}`, sk: "TENANT" });
const KEK_REGISTRY_KEY = { pk: "META", sk: "KEKS" };

interface TenantItem {
  tenantId: string;
  createdAt: string;
  currentDekVersion: number;
  dataKeys: WrappedDataKey[];
}

/**
 * A tenant and its wrapped DEKs are one item, so creating a tenant with DEK v1, adding a DEK version
 * or re-wrapping one is always a single conditional write.
 */
export class TenantRepository {
  constructor(private readonly table: Table) {}

  /** Returns false when the tenant already exists. */
  create(tenant: Tenant): Promise<boolean> {
    const item: TenantItem = {
      tenantId: tenant.tenantId,
      createdAt: tenant.createdAt,
      currentDekVersion: tenant.currentDekVersion,
      dataKeys: [...tenant.dataKeys],
    };
    return putIfAbsent(this.table, { ...tenantKey(tenant.tenantId), ...item });
  }

  async get(tenantId: string): Promise<Tenant | undefined> {
    const item = (await getItem(this.table, tenantKey(tenantId))) as TenantItem | undefined;
    if (item === undefined) return undefined;
    return {
      tenantId: item.tenantId,
      createdAt: item.createdAt,
      currentDekVersion: item.currentDekVersion,
      dataKeys: item.dataKeys.map((key) => ({ ...key, ciphertext: new Uint8Array(key.ciphertext) })),
    };
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

  /** The KEKs that have wrapped DEKs here; also serves as the store's liveness probe. */
  async registeredKeks(): Promise<string[]> {
    const kekIds = (await getItem(this.table, KEK_REGISTRY_KEY))?.kekIds as Set<string> | undefined;
    return kekIds === undefined ? [] : [...kekIds].sort();
  }
}
