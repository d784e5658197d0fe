import { StoreUnavailableError } from "../domain/errors.ts";
import type { ItemSeal } from "../domain/item-integrity.ts";
import { type Page, ROLES, type Role, type TokenRecord } from "../domain/types.ts";
import { resealItem } from "./item-reseal.ts";
import {
  BOOTSTRAP_TOKENS_KEY,
  LOCAL_BOOTSTRAP_KEY,
  TOKEN_DIRECTORY_PARTITION,
  tokenDirectoryKey,
  tokenKey,
} from "./keys.ts";
import { queryPage, type Table } from "./table.ts";

type TokenItem = Omit<TokenRecord, "tenants"> & { tenants: string[] } & ItemSeal;

/**
 * A token item as read. The table is not trusted, so each part may be missing: `record` when the item
 * is not even token-shaped, `seal` when it carries no MAC. Either way the caller refuses it.
 */
export interface StoredToken {
  readonly record?: TokenRecord;
  readonly seal?: ItemSeal;
}

/** Only the fields' types are checked here; whether they are the ones that were issued is the MAC's to say. */
function recordOf(item: Record<string, unknown>): TokenRecord | undefined {
  const { tokenId, secretHash, role, tenants, createdAt, expiresAt, revokedAt } = item;
  if (
    typeof tokenId !== "string" ||
    !(secretHash instanceof Uint8Array) ||
    typeof role !== "string" ||
    !(ROLES as readonly string[]).includes(role) ||
    !Array.isArray(tenants) ||
    !tenants.every((tenant) => typeof tenant === "string") ||
    typeof createdAt !== "string" ||
    typeof expiresAt !== "string" ||
    (revokedAt !== undefined && typeof revokedAt !== "string")
  ) {
    return undefined;
  }
  return {
    tokenId,
    secretHash: new Uint8Array(secretHash),
    role: role as Role,
    tenants: tenants as string[],
    createdAt,
    expiresAt,
    ...(revokedAt === undefined ? {} : { revokedAt }),
  };
}

/**
 * Tokens are stored by id with a hash of their secret half, never the bearer value, and with the seal
 * (MAC and key reference) the service made over every field; the key itself never enters the table.
 */
export class TokenRepository {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  async create(record: TokenRecord, seal: ItemSeal): Promise<void> {
    const item: TokenItem = {
      ...record,
      tenants: [...record.tenants],
      mac: seal.mac,
      macKeyRef: seal.macKeyRef,
    };
    // The directory entry first: no token exists that the access review cannot list.
    await this.#table.put({
      ...tokenDirectoryKey(record.tokenId),
      tokenId: record.tokenId,
      createdAt: record.createdAt,
    });
    // Ids are 128 random bits; a collision means something is badly wrong, not a retryable conflict.
    if (!(await this.#table.putIfAbsent({ ...tokenKey(record.tokenId), ...item }))) {
      throw new StoreUnavailableError("token id collision; refusing to overwrite an existing token");
    }
  }

  async get(tokenId: string): Promise<StoredToken | undefined> {
    const item = await this.#table.get(tokenKey(tokenId));
    if (item === undefined) return undefined;
    const record = recordOf(item);
    const { mac, macKeyRef } = item;
    return {
      ...(record === undefined ? {} : { record }),
      ...(typeof mac === "string" && typeof macKeyRef === "string" ? { seal: { mac, macKeyRef } } : {}),
    };
  }

  /** One page of token ids from the directory, in id order. */
  async listIds(limit: number, cursor?: string): Promise<Page<string>> {
    const page = await queryPage(
      this.#table,
      { keyCondition: "pk = :pk", projection: "sk", values: { ":pk": TOKEN_DIRECTORY_PARTITION } },
      { partition: TOKEN_DIRECTORY_PARTITION, sortKeyPrefix: "", limit, cursor },
    );
    return { ...page, items: page.items.map((item) => String(item.sk)) };
  }

  /** Re-keys a token's MAC over the content its old MAC verified; false when the item changed since. */
  reseal(tokenId: string, sealedAs: string, seal: ItemSeal): Promise<boolean> {
    return resealItem(this.#table, tokenKey(tokenId), sealedAs, seal);
  }

  /** The token id the local server last issued as its bootstrap admin, if it ever did. */
  async localBootstrap(): Promise<string | undefined> {
    const item = await this.#table.get(LOCAL_BOOTSTRAP_KEY);
    return typeof item?.tokenId === "string" ? item.tokenId : undefined;
  }

  /** Remembers a bootstrap admin token's id, locally or on AWS, so it can be told apart later. */
  async addBootstrapId(tokenId: string): Promise<void> {
    await this.#table.update(BOOTSTRAP_TOKENS_KEY, {
      update: "ADD ids :id",
      values: { ":id": new Set([tokenId]) },
    });
  }

  async isBootstrapId(tokenId: string): Promise<boolean> {
    const ids = (await this.#table.get(BOOTSTRAP_TOKENS_KEY))?.ids;
    return ids instanceof Set && ids.has(tokenId);
  }

  async setLocalBootstrap(tokenId: string, issuedAt: string): Promise<void> {
    await this.#table.put({ ...LOCAL_BOOTSTRAP_KEY, tokenId, issuedAt });
  }

  /**
   * Sets `revokedAt` and the seal made over the revoked token, only over the item whose MAC the caller
   * verified (`sealedAs`), so no concurrent change of the item gets the new seal. False when the token
   * is gone, already revoked, or was changed since it was read.
   */
  revoke(tokenId: string, revokedAt: string, seal: ItemSeal, sealedAs: string): Promise<boolean> {
    return this.#table.update(tokenKey(tokenId), {
      update: "SET revokedAt = :revokedAt, mac = :mac, macKeyRef = :macKeyRef",
      condition: "attribute_exists(pk) AND attribute_not_exists(revokedAt) AND mac = :sealedAs",
      values: {
        ":revokedAt": revokedAt,
        ":mac": seal.mac,
        ":macKeyRef": seal.macKeyRef,
        ":sealedAs": sealedAs,
      },
    });
  }
}
