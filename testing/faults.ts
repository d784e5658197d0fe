import { DeleteCommand, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import type { Key, Table } from "../shared/storage/table.ts";

/** Key of a secret's head item, as `shared/storage/secret-repository.ts` lays it out. */
export const headKey = (tenantId: string, name: string): Key => ({ pk: `T#${tenantId}`, sk: `S#${name}` });

/** Key of an archived (non-current) secret version. */
export const versionKey = (tenantId: string, name: string, version: number): Key => ({
  pk: `T#${tenantId}`,
  sk: `V#${name}#${String(version).padStart(10, "0")}`,
});

export const tenantKey = (tenantId: string): Key => ({ pk: `T#${tenantId}`, sk: "TENANT" });

export async function getRawItem(table: Table, key: Key): Promise<Record<string, any>> {
  const result = await table.doc.send(
    new GetCommand({ TableName: table.name, Key: key, ConsistentRead: true }),
  );
  if (result.Item === undefined) throw new Error(`no item at ${key.pk} / ${key.sk}`);
  return result.Item;
}

/** Overwrites an item behind the service's back, the way an attacker with table access would. */
export async function putRawItem(table: Table, item: Record<string, unknown>): Promise<void> {
  await table.doc.send(new PutCommand({ TableName: table.name, Item: item }));
}

/** A copy of `bytes` with one bit inverted. */
export function flipBit(bytes: Uint8Array, byteIndex: number, bit = 0): Uint8Array {
  const copy = new Uint8Array(bytes);
  if (byteIndex < 0 || byteIndex >= copy.length) throw new RangeError(`byte ${byteIndex} is out of range`);
  copy[byteIndex] = (copy[byteIndex] as number) ^ (1 << bit);
  return copy;
}

/** Flips one bit of a stored secret item's `envelope` attribute (head or archived version). */
export async function flipEnvelopeBit(table: Table, key: Key, byteIndex: number, bit = 0): Promise<void> {
  const item = await getRawItem(table, key);
  await putRawItem(table, { ...item, envelope: flipBit(item.envelope as Uint8Array, byteIndex, bit) });
}

export interface InjectedFault {
  /** How many calls the fault has refused so far. */
  readonly refused: number;
  arm(): void;
  disarm(): void;
  /** Takes the middleware off the client's stack again. */
  remove(): void;
}

export interface SdkCall {
  readonly commandName: string;
  readonly input: Record<string, unknown>;
}

let faultCounter = 0;

/**
 * Fault injection, not a mock: a real AWS SDK middleware on the service's own DynamoDB client that
 * makes the calls `matches` selects fail before they leave the process, as a throttled or unreachable
 * DynamoDB would. Every other call goes to dynalite untouched. Starts armed.
 */
export function injectFault(
  table: Table,
  matches: (call: SdkCall) => boolean,
  errorName = "InjectedServiceUnavailable",
): InjectedFault {
  faultCounter += 1;
  const name = `strongbox-test-fault-${faultCounter}`;
  let armed = true;
  let refused = 0;
  // The document client shares its middleware stack with the underlying DynamoDBClient.
  const stack = table.doc.middlewareStack;
  stack.add(
    (next, context) => async (args) => {
      const call = {
        commandName: String(context.commandName),
        input: (args.input ?? {}) as Record<string, unknown>,
      };
      if (armed && matches(call)) {
        refused += 1;
        const error = new Error(`fault injected into ${call.commandName}`);
        error.name = errorName;
        throw error;
      }
      return next(args);
    },
    // Initialize runs before retries, so an injected failure is not retried into dynalite.
    { step: "initialize", priority: "high", name },
  );
  return {
    get refused() {
      return refused;
    },
    arm: () => {
      armed = true;
    },
    disarm: () => {
      armed = false;
    },
    remove: () => {
      stack.remove(name);
    },
  };
}

/** The partition key of a PutItem's Item, whether the document client has marshalled it yet or not. */
function putItemPartition(input: Record<string, unknown>): string | undefined {
  const pk = (input.Item as Record<string, unknown> | undefined)?.pk;
  if (typeof pk === "string") return pk;
  const marshalled = (pk as { S?: unknown } | undefined)?.S;
  return typeof marshalled === "string" ? marshalled : undefined;
}

/** The sort key of a PutItem's Item, marshalled or not. */
function putItemSortKey(input: Record<string, unknown>): string | undefined {
  const sk = (input.Item as Record<string, unknown> | undefined)?.sk;
  if (typeof sk === "string") return sk;
  const marshalled = (sk as { S?: unknown } | undefined)?.S;
  return typeof marshalled === "string" ? marshalled : undefined;
}

const auditPut = (call: SdkCall, prefix: string): boolean =>
  call.commandName === "PutItemCommand" &&
  (putItemPartition(call.input)?.startsWith("AUDIT#") ?? false) &&
  (putItemSortKey(call.input)?.startsWith(prefix) ?? false);

/** Whether a BatchWriteItem puts an item under the prefix in an audit partition. */
const auditBatchPut = (call: SdkCall, prefix: string): boolean =>
  call.commandName === "BatchWriteItemCommand" &&
  Object.values((call.input.RequestItems ?? {}) as Record<string, unknown[]>).some((requests) =>
    requests.some((request) => {
      const put = (request as { PutRequest?: Record<string, unknown> }).PutRequest;
      return (
        put !== undefined &&
        (putItemPartition(put)?.startsWith("AUDIT#") ?? false) &&
        (putItemSortKey(put)?.startsWith(prefix) ?? false)
      );
    }),
  );

/**
 * Matches exactly the request path's audit record writes (each record under its own key, waiting to be
 * chained): alone a PutItem, several at once a BatchWriteItem.
 */
export const auditAppends = (call: SdkCall): boolean => auditPut(call, "NEW#") || auditBatchPut(call, "NEW#");

/** Matches exactly the sequencer's block writes, which extend a chain. */
export const chainBlockAppends = (call: SdkCall): boolean => auditPut(call, "SEQ#");

/** Key of the audit block whose first record is `sequence`, as `shared/storage/audit-repository.ts` lays it out. */
export const auditRecordKey = (scope: string, sequence: number): Key => ({
  pk: `AUDIT#${scope}`,
  sk: `SEQ#${String(sequence).padStart(12, "0")}`,
});

/** The record stored at `sequence`, from a block that holds it alone (as sequential requests write them). */
export async function getRawAuditRecord(
  table: Table,
  scope: string,
  sequence: number,
): Promise<Record<string, any>> {
  const block = await getRawItem(table, auditRecordKey(scope, sequence));
  if (block.records?.length !== 1)
    throw new Error(`block at ${sequence} holds ${block.records?.length} records`);
  return block.records[0];
}

/** Stores `record` as the only record of the block at `sequence`, behind the service's back. */
export async function putRawAuditRecord(
  table: Table,
  scope: string,
  sequence: number,
  record: Record<string, unknown>,
): Promise<void> {
  await putRawItem(table, { ...auditRecordKey(scope, sequence), records: [record] });
}

/** Deletes an item behind the service's back. */
export async function deleteRawItem(table: Table, key: Key): Promise<void> {
  await table.doc.send(new DeleteCommand({ TableName: table.name, Key: key }));
}

export interface CallCounter {
  /** Calls seen so far that `matches` selected. */
  readonly count: number;
  remove(): void;
}

/** Counts the service's own DynamoDB calls that `matches` selects, without changing any (an injectFault that never fires). */
export function countCalls(table: Table, matches: (call: SdkCall) => boolean): CallCounter {
  let count = 0;
  const fault = injectFault(table, (call) => {
    if (matches(call)) count += 1;
    return false;
  });
  return {
    get count() {
      return count;
    },
    remove: fault.remove,
  };
}

/** Matches every Scan. */
export const scans = (call: SdkCall): boolean => call.commandName === "ScanCommand";
