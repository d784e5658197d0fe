// How the audit chain groups records into the blocks it stores: one conditional put per block.

/** Records in one block at most: what a group commit takes from the queue in one write. */
export const MAX_BLOCK_RECORDS = 100;
/**
 * A block is also cut by size: DynamoDB refuses items over 400 KB, and a refused block would fail
 * every caller in it. The estimate is generous, so this leaves room for the key and attribute names.
 */
export const MAX_BLOCK_BYTES = 300 * 1024;
/** `sequence`, `prevHash`, `hash`, `mac`, `macKeyRef` and their names, added to the event when chained. */
const CHAIN_FIELD_BYTES = 512;

/** What an event will weigh in a block once chained: its JSON size, an upper bound of DynamoDB's count. */
export function estimatedRecordBytes(event: object): number {
  return Buffer.byteLength(JSON.stringify(event), "utf8") + CHAIN_FIELD_BYTES;
}
