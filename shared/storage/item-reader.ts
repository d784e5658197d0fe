import { BatchGetCommand, type DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";
import { StoreUnavailableError } from "../domain/errors.ts";

export type Key = { pk: string; sk: string };
export type Item = Record<string, unknown>;

interface Waiter {
  readonly key: Key;
  resolve(item: Item | undefined): void;
  reject(error: unknown): void;
}

/** BatchGetItem takes at most 100 keys. */
const MAX_BATCH = 100;
/** Unprocessed keys come back under throttling; retried with backoff a few times, then refused. */
const MAX_UNPROCESSED_ROUNDS = 4;

const keyId = (key: Key) => JSON.stringify([key.pk, key.sk]);

/**
 * Strongly consistent point reads, coalesced: every read asked for in the same tick goes out as one
 * BatchGetItem (one GetItem when alone). A request that needs two independent items, such as the
 * caller's token and the secret it reads, asks for both at once and pays one round trip.
 */
export class ItemReader {
  readonly #doc: DynamoDBDocumentClient;
  readonly #tableName: string;
  #pending: Waiter[] = [];

  constructor(doc: DynamoDBDocumentClient, tableName: string) {
    this.#doc = doc;
    this.#tableName = tableName;
  }

  get(key: Key): Promise<Item | undefined> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ key, resolve, reject });
      if (this.#pending.length === 1) queueMicrotask(() => this.#flush());
    });
  }

  #flush(): void {
    const waiters = this.#pending;
    this.#pending = [];
    for (let start = 0; start < waiters.length; start += MAX_BATCH) {
      const batch = waiters.slice(start, start + MAX_BATCH);
      this.#load(batch.map((waiter) => waiter.key)).then(
        (items) => {
          for (const waiter of batch) waiter.resolve(items.get(keyId(waiter.key)));
        },
        (error: unknown) => {
          for (const waiter of batch) waiter.reject(error);
        },
      );
    }
  }

  async #load(keys: Key[]): Promise<Map<string, Item>> {
    const unique = [...new Map(keys.map((key) => [keyId(key), key])).values()];
    const found = new Map<string, Item>();
    const operation = unique.length === 1 ? "GetItem" : "BatchGetItem";
    try {
      if (unique.length === 1) {
        const [key] = unique as [Key];
        const result = await this.#doc.send(
          new GetCommand({ TableName: this.#tableName, Key: key, ConsistentRead: true }),
        );
        if (result.Item !== undefined) found.set(keyId(key), result.Item);
        return found;
      }
      let remaining: Record<string, unknown>[] = unique;
      for (let round = 0; remaining.length > 0; round += 1) {
        if (round === MAX_UNPROCESSED_ROUNDS) throw new Error("BatchGetItem left keys unprocessed");
        if (round > 0) await new Promise((resolve) => setTimeout(resolve, 25 * 2 ** round));
        const result = await this.#doc.send(
          new BatchGetCommand({
            RequestItems: { [this.#tableName]: { Keys: remaining, ConsistentRead: true } },
          }),
        );
        for (const item of result.Responses?.[this.#tableName] ?? []) {
          found.set(keyId({ pk: String(item.pk), sk: String(item.sk) }), item);
        }
        remaining = result.UnprocessedKeys?.[this.#tableName]?.Keys ?? [];
      }
      return found;
    } catch (error) {
      const name = error instanceof Error ? error.name : "unknown error";
      // The operation and the error's name (AccessDeniedException names a missing grant), never the keys.
      throw new StoreUnavailableError(`DynamoDB ${operation} failed: ${name}`, { cause: error });
    }
  }
}
