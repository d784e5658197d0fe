import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceNotFoundException,
} from "@aws-sdk/client-dynamodb";
import {
  DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
} from "@aws-sdk/lib-dynamodb";
import { StoreUnavailableError, ValidationError } from "../domain/errors.ts";
import type { Page } from "../domain/types.ts";
import { ItemReader, type Key } from "./item-reader.ts";

export type { Key };

/** One table, keyed by a string partition key `pk` and sort key `sk`; every entity lives in it. */
export interface Table {
  readonly doc: DynamoDBDocumentClient;
  readonly name: string;
  readonly reader: ItemReader;
}

export interface DynamoConnection {
  /** A DynamoDB-protocol endpoint such as local dynalite; omitted for the real service. */
  readonly endpoint?: string;
  readonly region: string;
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
}

export function createTable(connection: DynamoConnection, name: string): Table {
  const client = new DynamoDBClient({
    region: connection.region,
    maxAttempts: 3,
    ...(connection.endpoint === undefined ? {} : { endpoint: connection.endpoint }),
    ...(connection.credentials === undefined ? {} : { credentials: connection.credentials }),
  });
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  return { doc, name, reader: new ItemReader(doc, name) };
}

function isConditionFailure(error: unknown): boolean {
  return error instanceof ConditionalCheckFailedException;
}

/** Every DynamoDB call goes through here so that no SDK error, with its request details, leaks upward. */
export async function send<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (isConditionFailure(error)) throw error;
    const name = error instanceof Error ? error.name : "unknown error";
    throw new StoreUnavailableError(`DynamoDB ${operation} failed: ${name}`, { cause: error });
  }
}

/** Runs a conditional write; false means its condition did not hold, which callers answer in domain terms. */
export async function writeIf(operation: string, call: () => Promise<unknown>): Promise<boolean> {
  try {
    await send(operation, call);
    return true;
  } catch (error) {
    if (isConditionFailure(error)) return false;
    throw error;
  }
}

/** A strongly consistent read; reads asked for in the same tick share one round trip. */
export function getItem(table: Table, key: Key): Promise<Record<string, unknown> | undefined> {
  return table.reader.get(key);
}

/** Puts an item that must not exist yet; false when it does. */
export function putIfAbsent(table: Table, item: Key & Record<string, unknown>): Promise<boolean> {
  return writeIf("PutItem", () =>
    table.doc.send(
      new PutCommand({ TableName: table.name, Item: item, ConditionExpression: "attribute_not_exists(pk)" }),
    ),
  );
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
  query: Omit<QueryCommandInput, "TableName" | "Limit" | "ExclusiveStartKey">,
  page: PageRequest,
): Promise<Page<Record<string, unknown>>> {
  const startKey = decodeCursor(page);
  const result = await send("Query", () =>
    table.doc.send(
      new QueryCommand({
        ...query,
        TableName: table.name,
        Limit: page.limit,
        ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
      }),
    ),
  );
  const nextCursor = encodeCursor(result.LastEvaluatedKey);
  const items = result.Items ?? [];
  return nextCursor === undefined ? { items } : { items, nextCursor };
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
