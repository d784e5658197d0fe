import type { Agent } from "node:http";
import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceNotFoundException,
} from "@aws-sdk/client-dynamodb";
import {
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { StoreUnavailableError, ValidationError } from "../domain/errors.ts";
import type { Page } from "../domain/types.ts";
import { FreshItemWriter } from "./fresh-item-writer.ts";
import { type Item, ItemReader, type Key } from "./item-reader.ts";

export type { Item, Key };

/** Expression attribute names and values: DynamoDB takes one set per call, shared by all its expressions. */
export interface Placeholders {
  readonly names?: Record<string, string>;
  readonly values?: Record<string, unknown>;
}

/** A write that happens only if `condition` holds, and answers whether it did. */
export interface Conditional extends Placeholders {
  readonly condition: string;
}

export interface UpdateOptions extends Placeholders {
  readonly update: string;
  readonly condition?: string;
}

export interface ScanInput extends Placeholders {
  readonly filter?: string;
  readonly projection?: string;
  readonly startKey?: Record<string, unknown> | undefined;
  readonly consistent?: boolean;
}

export interface QueryInput extends ScanInput {
  /** Confined to one partition (`pk = :pk`), optionally to a sort-key range of it. */
  readonly keyCondition: string;
  readonly limit?: number;
  /** False reads in descending sort-key order (`ScanIndexForward`). */
  readonly forward?: boolean;
}

/** The items a query or scan read, and where to continue when it stopped early. */
export interface ItemPage {
  readonly items: Item[];
  readonly lastKey?: Record<string, unknown>;
}

function isConditionFailure(error: unknown): error is ConditionalCheckFailedException {
  return error instanceof ConditionalCheckFailedException;
}

/** Every DynamoDB call goes through here so that no SDK error, with its request details, leaks upward. */
async function send<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (isConditionFailure(error)) throw error;
    const name = error instanceof Error ? error.name : "unknown error";
    throw new StoreUnavailableError(`DynamoDB ${operation} failed: ${name}`, { cause: error });
  }
}

/**
 * Runs a conditional write: "written", or why not. "refused-on-retry" is the ambiguous commit: an
 * earlier attempt of this same call may have been applied before its answer was lost (a dropped
 * connection, a timeout), and the SDK's retry then failed the condition against that very write.
 */
async function writeIf(
  operation: string,
  call: () => Promise<unknown>,
): Promise<"written" | "refused" | "refused-on-retry"> {
  try {
    await send(operation, call);
    return "written";
  } catch (error) {
    if (!isConditionFailure(error)) throw error;
    return (error.$metadata.attempts ?? 1) > 1 ? "refused-on-retry" : "refused";
  }
}

/** Item equality as DynamoDB stores it: binary by its bytes, maps by their keys, undefined left out. */
function sameValue(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.from(a).equals(Buffer.from(b));
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((value, index) => sameValue(value, b[index]));
  if (typeof a === "object" && a !== null && typeof b === "object" && b !== null) {
    const defined = (record: object) =>
      Object.entries(record).filter(([, value]) => value !== undefined) as [string, unknown][];
    const left = defined(a);
    const right = new Map(defined(b));
    return left.length === right.size && left.every(([key, value]) => sameValue(value, right.get(key)));
  }
  return a === b;
}

/** Only the parameters that were given, so a request carries no parameter its caller left out. */
function given<T extends Record<string, unknown>>(params: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(params).filter(([, value]) => value !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

const placeholders = (options: Placeholders) =>
  given({ ExpressionAttributeNames: options.names, ExpressionAttributeValues: options.values });

const readParameters = (input: ScanInput) => ({
  ...given({
    FilterExpression: input.filter,
    ProjectionExpression: input.projection,
    ConsistentRead: input.consistent,
    ExclusiveStartKey: input.startKey,
  }),
  ...placeholders(input),
});

/**
 * One table, keyed by a string partition key `pk` and sort key `sk`; every entity lives in it. The
 * repositories reach DynamoDB only through these methods, which name the table and turn every SDK
 * error into a StoreUnavailableError.
 */
export class Table {
  /** The SDK client itself, for harnesses that watch or fault its calls; repositories use the methods. */
  readonly doc: DynamoDBDocumentClient;
  readonly name: string;
  readonly #reader: ItemReader;
  readonly #fresh: FreshItemWriter;

  constructor(doc: DynamoDBDocumentClient, name: string) {
    this.doc = doc;
    this.name = name;
    this.#reader = new ItemReader(doc, name);
    this.#fresh = new FreshItemWriter(
      (item) => this.putIfAbsent(item),
      (items) =>
        this.#batchWrite(
          items.map((item) => ({ PutRequest: { Item: item } })),
          "puts",
        ),
    );
  }

  /** A strongly consistent read; reads asked for in the same tick share one round trip. */
  get(key: Key): Promise<Item | undefined> {
    return this.#reader.get(key);
  }

  put(item: Item, options: Conditional): Promise<boolean>;
  put(item: Item): Promise<void>;
  async put(item: Item, options?: Conditional): Promise<unknown> {
    const call = () =>
      this.doc.send(
        new PutCommand({
          TableName: this.name,
          Item: item,
          ...given({ ConditionExpression: options?.condition }),
          ...placeholders(options ?? {}),
        }),
      );
    if (options === undefined) {
      await send("PutItem", call);
      return;
    }
    const outcome = await writeIf("PutItem", call);
    // A put that was refused only on a retry may have been refused by its own first attempt. If the
    // item stored is exactly the one put, that attempt committed it (or an identical write did, which
    // is the same outcome): answering false would send the caller on as if another writer had won,
    // to allocate a duplicate version, append a record twice, or refuse a cas write with a false 409.
    if (outcome === "refused-on-retry") return sameValue(await this.get(keyOf(item)), item);
    return outcome === "written";
  }

  /** Puts an item that must not exist yet; false when it does. */
  putIfAbsent(item: Key & Item): Promise<boolean> {
    return this.put(item, { condition: "attribute_not_exists(pk)" });
  }

  /**
   * Puts an item whose key holds a fresh random id, so that no other writer can know it first; puts
   * asked for together share one BatchWriteItem. False only if the key was taken.
   */
  putFresh(item: Key & Item): Promise<boolean> {
    return this.#fresh.put(item);
  }

  update(key: Key, options: UpdateOptions & Conditional): Promise<boolean>;
  update(key: Key, options: UpdateOptions): Promise<void>;
  async update(key: Key, options: UpdateOptions): Promise<unknown> {
    const call = () =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.name,
          Key: key,
          UpdateExpression: options.update,
          ...given({ ConditionExpression: options.condition }),
          ...placeholders(options),
        }),
      );
    // An update cannot be compared with what it left; a retry refused by its own commit reads as refused.
    if (options.condition !== undefined) return (await writeIf("UpdateItem", call)) === "written";
    await send("UpdateItem", call);
  }

  /** Deletes an item; deleting one that is not there is not an error. With a condition, false when it fails. */
  delete(key: Key, options: Conditional): Promise<boolean>;
  delete(key: Key): Promise<void>;
  async delete(key: Key, options?: Conditional): Promise<unknown> {
    const call = () =>
      this.doc.send(
        new DeleteCommand({
          TableName: this.name,
          Key: key,
          ...given({ ConditionExpression: options?.condition }),
          ...placeholders(options ?? {}),
        }),
      );
    if (options === undefined) {
      await send("DeleteItem", call);
      return;
    }
    const outcome = await writeIf("DeleteItem", call);
    // Refused only on a retry, with the item gone: the first attempt deleted it.
    if (outcome === "refused-on-retry") return (await this.get(key)) === undefined;
    return outcome === "written";
  }

  /** A conditional update that answers with the item as it is after it; undefined when the condition failed. */
  async updateReturning(key: Key, options: UpdateOptions & Conditional): Promise<Item | undefined> {
    try {
      const output = await send("UpdateItem", () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.name,
            Key: key,
            UpdateExpression: options.update,
            ConditionExpression: options.condition,
            ReturnValues: "ALL_NEW",
            ...placeholders(options),
          }),
        ),
      );
      return output.Attributes;
    } catch (error) {
      if (isConditionFailure(error)) return undefined;
      throw error;
    }
  }

  /**
   * Deletes the items, 25 to a BatchWriteItem (its limit), the calls at once, retrying what DynamoDB
   * leaves unprocessed a few times; throws when some still are, so the caller knows they may remain.
   */
  async deleteMany(keys: readonly Key[]): Promise<void> {
    const chunks: Key[][] = [];
    for (let start = 0; start < keys.length; start += 25) chunks.push(keys.slice(start, start + 25));
    await Promise.all(chunks.map((chunk) => this.#deleteBatch(chunk)));
  }

  #deleteBatch(keys: readonly Key[]): Promise<void> {
    return this.#batchWrite(
      keys.map((key) => ({ DeleteRequest: { Key: key } })),
      "deletes",
    );
  }

  /**
   * One BatchWriteItem of at most 25 requests, retrying what DynamoDB leaves unprocessed (under
   * throttling) a few times with backoff; throws when some still are, so the caller knows.
   */
  async #batchWrite(requests: readonly Record<string, unknown>[], what: string): Promise<void> {
    let left = requests;
    for (let attempt = 0; left.length > 0; attempt += 1) {
      if (attempt === 5) throw new StoreUnavailableError(`DynamoDB BatchWriteItem left ${what} unprocessed`);
      const output = await send("BatchWriteItem", () =>
        this.doc.send(new BatchWriteCommand({ RequestItems: { [this.name]: left as never } })),
      );
      left = (output.UnprocessedItems?.[this.name] ?? []) as typeof left;
      if (left.length > 0) await new Promise((resolve) => setTimeout(resolve, 10 * 2 ** attempt));
    }
  }

  async query(input: QueryInput): Promise<ItemPage> {
    const output = await send("Query", () =>
      this.doc.send(
        new QueryCommand({
          TableName: this.name,
          KeyConditionExpression: input.keyCondition,
          ...given({ ScanIndexForward: input.forward, Limit: input.limit }),
          ...readParameters(input),
        }),
      ),
    );
    return pageOf(output);
  }

  async scan(input: ScanInput): Promise<ItemPage> {
    const output = await send("Scan", () =>
      this.doc.send(new ScanCommand({ TableName: this.name, ...readParameters(input) })),
    );
    return pageOf(output);
  }
}

function keyOf(item: Item): Key {
  return { pk: item.pk as string, sk: item.sk as string };
}

function pageOf(output: {
  Items?: Item[] | undefined;
  LastEvaluatedKey?: Record<string, unknown> | undefined;
}): ItemPage {
  const items = output.Items ?? [];
  return output.LastEvaluatedKey === undefined ? { items } : { items, lastKey: output.LastEvaluatedKey };
}

export interface DynamoConnection {
  /** A DynamoDB-protocol endpoint such as local dynalite; omitted for the real service. */
  readonly endpoint?: string;
  readonly region: string;
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
  /** How to reach `endpoint` when it is no TCP address (the local server's dynalite socket). */
  readonly httpAgent?: Agent;
  /** Per attempt, connecting included; the SDK's default would wait 300 s on a hung connection. */
  readonly requestTimeoutMs?: number;
}

/** A hung request fails as a TimeoutError, which the SDK retries like any transient error. */
function requestHandlerOptions(timeoutMs: number | undefined, httpAgent: Agent | undefined) {
  if (timeoutMs === undefined && httpAgent === undefined) return {};
  return {
    requestHandler: {
      ...(httpAgent === undefined ? {} : { httpAgent }),
      ...(timeoutMs === undefined
        ? {}
        : { requestTimeout: timeoutMs, connectionTimeout: timeoutMs, throwOnRequestTimeout: true }),
    },
  };
}

export function createTable(connection: DynamoConnection, name: string): Table {
  const client = new DynamoDBClient({
    region: connection.region,
    maxAttempts: 3,
    ...requestHandlerOptions(connection.requestTimeoutMs, connection.httpAgent),
    ...(connection.endpoint === undefined ? {} : { endpoint: connection.endpoint }),
    ...(connection.credentials === undefined ? {} : { credentials: connection.credentials }),
  });
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  return new Table(doc, name);
}

export interface PageRequest {
  /** The partition the query reads; a cursor from any other partition is refused. */
  readonly partition: string;
  /** The sort-key prefix the query is confined to; a cursor outside it is refused. */
  readonly sortKeyPrefix: string;
  readonly limit: number;
  readonly cursor?: string | undefined;
}

/** One page of a query within one partition, continuing from a cursor issued for that same range. */
export async function queryPage(
  table: Table,
  query: Omit<QueryInput, "limit" | "startKey">,
  page: PageRequest,
): Promise<Page<Item>> {
  const startKey = decodeCursor(page);
  const result = await table.query({ ...query, limit: page.limit, startKey });
  const nextCursor = encodeCursor(result.lastKey);
  return nextCursor === undefined ? { items: result.items } : { items: result.items, nextCursor };
}

/** Creates the table if it is missing, for local runs; deployed tables are created by infra. */
export async function ensureTableExists(table: Table): Promise<void> {
  const client = table.doc;
  try {
    await client.send(new DescribeTableCommand({ TableName: table.name }));
    return;
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) {
      throw new StoreUnavailableError(`cannot reach table ${table.name}`, { cause: error });
    }
  }
  await client.send(
    new CreateTableCommand({
      TableName: table.name,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: [
        { AttributeName: "pk", AttributeType: "S" },
        { AttributeName: "sk", AttributeType: "S" },
      ],
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
    }),
  );
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const described = await client.send(new DescribeTableCommand({ TableName: table.name }));
    if (described.Table?.TableStatus === "ACTIVE") return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new StoreUnavailableError(`table ${table.name} did not become active`);
}

/** Opaque pagination cursors that can only continue the partition they were issued for. */
function encodeCursor(key: Record<string, unknown> | undefined): string | undefined {
  return key === undefined ? undefined : Buffer.from(JSON.stringify(key)).toString("base64url");
}

/** DynamoDB's own limit on a sort key; a longer one would reach it only to be rejected. */
const MAX_SORT_KEY_BYTES = 1024;

/**
 * Cursors are client input. Anything DynamoDB would reject as a start key is refused here with a 400,
 * so a crafted cursor can neither reach another range nor surface as a store error.
 */
function decodeCursor(page: PageRequest): Key | undefined {
  if (page.cursor === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(page.cursor, "base64url").toString("utf8"));
    if (
      typeof parsed === "object" &&
      parsed !== null &&
      "pk" in parsed &&
      "sk" in parsed &&
      parsed.pk === page.partition &&
      typeof parsed.sk === "string" &&
      parsed.sk.length > page.sortKeyPrefix.length &&
      parsed.sk.startsWith(page.sortKeyPrefix) &&
      Buffer.byteLength(parsed.sk) <= MAX_SORT_KEY_BYTES &&
      Object.keys(parsed).length === 2
    ) {
      return { pk: page.partition, sk: parsed.sk };
    }
  } catch {
    // Falls through to the same answer as any other foreign cursor.
  }
  throw new ValidationError("cursor is not valid for this listing");
}
