import { PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { Page, SealedVersion, SecretHead, SecretSummary } from "../domain/types.ts";
import { getItem, putIfAbsent, queryPage, type Table, writeIf } from "./table.ts";

const partition = (tenantId: string) => `T#${tenantId}`;
const headKey = (tenantId: string, name: string) => ({ pk: partition(tenantId), sk: `S#${name}` });
const versionKey = (tenantId: string, name: string, version: number) => ({
  pk: partition(tenantId),
  sk: `V#${name}#${String(version).padStart(10, "0")}`,
});

interface HeadItem {
  tenantId: string;
  name: string;
  version: number;
  envelope: Uint8Array;
  createdAt: string;
  updatedAt: string;
  deletedAt?: string;
}

interface VersionItem {
  version: number;
  envelope: Uint8Array;
  createdAt: string;
}

/**
 * Storage only ever sees sealed envelopes. A secret is a head item that holds its current version
 * inline, plus one archive item per earlier version. A write first archives the current version
 * (idempotently) and then swaps the head with one conditional put; the head swap is the commit. A
 * crash between the two leaves an archive copy of a version that is still current, which readers
 * never notice, so every version that was ever committed is readable at every instant.
 */
export class SecretRepository {
  constructor(private readonly table: Table) {}

  async getHead(tenantId: string, name: string): Promise<SecretHead | undefined> {
    const item = (await getItem(this.table, headKey(tenantId, name))) as HeadItem | undefined;
    if (item === undefined) return undefined;
    return {
      tenantId: item.tenantId,
      name: item.name,
      current: { version: item.version, envelope: new Uint8Array(item.envelope), createdAt: item.createdAt },
      updatedAt: item.updatedAt,
      ...(item.deletedAt === undefined ? {} : { deletedAt: item.deletedAt }),
    };
  }

  async getArchivedVersion(
    tenantId: string,
    name: string,
    version: number,
  ): Promise<SealedVersion | undefined> {
    const item = (await getItem(this.table, versionKey(tenantId, name, version))) as VersionItem | undefined;
    if (item === undefined) return undefined;
    return { version: item.version, envelope: new Uint8Array(item.envelope), createdAt: item.createdAt };
  }

  /** Copies a version into the archive; a copy that is already there is left as it is. */
  async archive(tenantId: string, name: string, sealed: SealedVersion): Promise<void> {
    const item: VersionItem = {
      version: sealed.version,
      envelope: sealed.envelope,
      createdAt: sealed.createdAt,
    };
    await putIfAbsent(this.table, { ...versionKey(tenantId, name, sealed.version), ...item });
  }

  /**
   * Makes `next` the current version if the head still holds `expectedVersion` (0: no head yet).
   * Returns false when another writer got there first. Clears any soft delete.
   */
  commit(tenantId: string, name: string, next: SealedVersion, expectedVersion: number): Promise<boolean> {
    const item: HeadItem = {
      tenantId,
      name,
      version: next.version,
      envelope: next.envelope,
      createdAt: next.createdAt,
      updatedAt: next.createdAt,
    };
    return writeIf("PutItem", () =>
      this.table.doc.send(
        new PutCommand({
          TableName: this.table.name,
          Item: { ...headKey(tenantId, name), ...item },
          ...(expectedVersion === 0
            ? { ConditionExpression: "attribute_not_exists(pk)" }
            : {
                ConditionExpression: "version = :expected",
                ExpressionAttributeValues: { ":expected": expectedVersion },
              }),
        }),
      ),
    );
  }

  /** Returns false when there is no live secret to delete. */
  softDelete(tenantId: string, name: string, deletedAt: string): Promise<boolean> {
    return writeIf("UpdateItem", () =>
      this.table.doc.send(
        new UpdateCommand({
          TableName: this.table.name,
          Key: headKey(tenantId, name),
          UpdateExpression: "SET deletedAt = :deletedAt",
          ConditionExpression: "attribute_exists(pk) AND attribute_not_exists(deletedAt)",
          ExpressionAttributeValues: { ":deletedAt": deletedAt },
        }),
      ),
    );
  }

  /** Live secrets' names and versions; envelopes are not even read. */
  async list(tenantId: string, limit: number, cursor?: string): Promise<Page<SecretSummary>> {
    const pk = partition(tenantId);
    const page = await queryPage(
      this.table,
      {
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
        FilterExpression: "attribute_not_exists(deletedAt)",
        ProjectionExpression: "#name, version, updatedAt",
        ExpressionAttributeNames: { "#name": "name" },
        ExpressionAttributeValues: { ":pk": pk, ":prefix": "S#" },
      },
      { partition: pk, sortKeyPrefix: "S#", limit, cursor },
    );
    const items = page.items.map((item) => ({
      name: item.name as string,
      version: item.version as number,
      updatedAt: item.updatedAt as string,
    }));
    return { ...page, items };
  }
}
