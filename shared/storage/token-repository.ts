import { StoreUnavailableError } from "../domain/errors.ts";
import type { TokenRecord } from "../domain/types.ts";
import { tokenKey } from "./keys.ts";
import type { Table } from "./table.ts";

type TokenItem = Omit<TokenRecord, "tenants"> & { tenants: string[] };

/** Tokens are stored by id with a hash of their secret half; the bearer value itself is never stored. */
export class TokenRepository {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  async create(record: TokenRecord): Promise<void> {
    const item: TokenItem = { ...record, tenants: [...record.tenants] };
    // Ids are 128 random bits; a collision means something is badly wrong, not a retryable conflict.
    if (!(await this.#table.putIfAbsent({ ...tokenKey(record.tokenId), ...item }))) {
      throw new StoreUnavailableError("token id collision; refusing to overwrite an existing token");
    }
  }

  async get(tokenId: string): Promise<TokenRecord | undefined> {
    const item = (await this.#table.get(tokenKey(tokenId))) as TokenItem | undefined;
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
  revoke(tokenId: string, revokedAt: string): Promise<boolean> {
    return this.#table.update(tokenKey(tokenId), {
      update: "SET revokedAt = :revokedAt",
      condition: "attribute_exists(pk) AND attribute_not_exists(revokedAt)",
      values: { ":revokedAt": revokedAt },
    });
  }
}
