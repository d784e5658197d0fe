import { GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { TokenRecord } from "../domain/types.ts";
import { isConditionFailure, send, type Table } from "./table.ts";

const tokenKey = (tokenId: string) => ({ pk: `TOKEN#${tokenId}`, sk: "TOKEN" });

type TokenItem = Omit<TokenRecord, "tenants"> & { tenants: string[] };

/** Tokens are stored by id with a hash of their secret half; the bearer value itself is never stored. */
export class TokenRepository {
  constructor(private readonly table: Table) {}

  async create(record: TokenRecord): Promise<void> {
    const item: TokenItem & { pk: string; sk: string } = {
      ...tokenKey(record.tokenId),
      ...record,
      tenants: [...record.tenants],
    };
    await send("PutItem", () =>
      this.table.doc.send(
        new PutCommand({
          TableName: this.table.name,
          Item: item,
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      ),
    );
  }

  async get(tokenId: string): Promise<TokenRecord | undefined> {
    const result = await send("GetItem", () =>
      this.table.doc.send(
        new GetCommand({ TableName: this.table.name, Key: tokenKey(tokenId), ConsistentRead: true }),
      ),
    );
    const item = result.Item as TokenItem | undefined;
    if (item === undefined) return undefined;
    return {
      tokenId: item.tokenId,
      secretHash: new Uint8Array(item.secretHash),
      role: item.role,
      tenants: item.tenants,
      createdAt: item.createdAt,
      expiresAt: item.expiresAt,
      ...(item.revokedAt === undefined ? {} : { revokedAt: item.revokedAt }),
    };
  }

  /** Returns false when there is no such token or it is already revoked. */
  async revoke(tokenId: string, revokedAt: string): Promise<boolean> {
    try {
      await send("UpdateItem", () =>
        this.table.doc.send(
          new UpdateCommand({
            TableName: this.table.name,
            Key: tokenKey(tokenId),
            UpdateExpression: "SET revokedAt = :revokedAt",
            ConditionExpression: "attribute_exists(pk) AND attribute_not_exists(revokedAt)",
            ExpressionAttributeValues: { ":revokedAt": revokedAt },
          }),
        ),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }
}
