import { type ChainKeys, chainGenesis, chainHash, chainMac, utcDay } from "../../crypto/chain-keys.ts";
import { estimatedRecordBytes, MAX_BLOCK_BYTES, MAX_BLOCK_RECORDS } from "../../domain/audit-block.ts";
import {
  type ChainedAuditRecord,
  type ChainHead,
  type ChainHeads,
  canonicalRecord,
  capAuditFields,
} from "../../domain/audit-chain.ts";
import { AuditRecordTooLargeError, StoreUnavailableError } from "../../domain/errors.ts";
import type { AuditEvent } from "../../domain/types.ts";
import type { Logger } from "../../observability/logger.ts";
import type { AuditRepository } from "../../storage/audit-repository.ts";

/**
 * Appends lost to other instances are retried on a fresh head. Someone wins every round, so the chain
 * always moves on; this bounds how long one request waits behind a crowd before it fails closed.
 */
const MAX_APPEND_ATTEMPTS = 50;
/** Each time the chain passes a multiple of this, the head goes to the log: an anchor outside the table. */
const CHECKPOINT_EVERY = 1000;

/** A head as the writer needs it: with the newest record's time, which the next may not precede by a day. */
type Tip = ChainHead & { readonly time?: string };

const pause = (attempt: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** attempt)));

interface Waiting {
  readonly event: AuditEvent;
  readonly bytes: number;
  resolve(record: ChainedAuditRecord): void;
  reject(error: unknown): void;
}

/** How many of the waiting records go into the next block: up to the record and the size limit. */
function blockLength(queue: readonly Waiting[]): number {
  let bytes = 0;
  let length = 0;
  for (const waiting of queue) {
    if (length === MAX_BLOCK_RECORDS || (length > 0 && bytes + waiting.bytes > MAX_BLOCK_BYTES)) break;
    bytes += waiting.bytes;
    length += 1;
  }
  return length;
}

/**
 * The audit chains of one service instance. Each instance keeps the last head it knows per scope, so
 * an append is normally one conditional put of the next block. Appends are group-committed per
 * scope: while one block's write is in flight, newly arriving records wait, and the next write
 * commits all of them as one block (a record's hash needs its predecessor's, so one scope's writes
 * go one at a time). Each caller is answered only once the block holding its record is stored; if
 * it cannot be, every caller in it gets the error (fail closed). An append that loses a race with
 * another instance re-reads the head, re-sequences the waiting records after it, and tries again.
 */
export class ChainWriter implements ChainHeads {
  readonly #heads = new Map<string, Tip>();
  readonly #waiting = new Map<string, Waiting[]>();
  readonly #writing = new Set<string>();

  readonly #repository: AuditRepository;
  readonly #keys: ChainKeys;
  readonly #logger: Logger;

  constructor(repository: AuditRepository, keys: ChainKeys, logger: Logger) {
    this.#repository = repository;
    this.#keys = keys;
    this.#logger = logger;
  }

  append(raw: AuditEvent): Promise<ChainedAuditRecord> {
    const event = capAuditFields(raw);
    const scope = event.tenantId;
    const bytes = estimatedRecordBytes(event);
    if (bytes > MAX_BLOCK_BYTES) {
      return Promise.reject(
        new AuditRecordTooLargeError(
          `an audit record of ${bytes} bytes for ${event.action} exceeds the ${MAX_BLOCK_BYTES}-byte block limit`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const queue = this.#waiting.get(scope) ?? [];
      queue.push({ event, bytes, resolve, reject });
      this.#waiting.set(scope, queue);
      if (!this.#writing.has(scope)) void this.#drain(scope);
    });
  }

  async #drain(scope: string): Promise<void> {
    this.#writing.add(scope);
    try {
      for (;;) {
        const queue = this.#waiting.get(scope) ?? [];
        const block = queue.splice(0, blockLength(queue));
        if (queue.length === 0) this.#waiting.delete(scope);
        if (block.length === 0) return;
        try {
          const records = await this.#commit(
            scope,
            block.map((waiting) => waiting.event),
          );
          for (const [i, waiting] of block.entries()) waiting.resolve(records[i] as ChainedAuditRecord);
        } catch (error) {
          for (const waiting of block) waiting.reject(error);
        }
      }
    } finally {
      this.#writing.delete(scope);
    }
  }

  /** The newest record's place and hash as stored, whichever instance wrote it. */
  async storedHead(scope: string): Promise<ChainHead | undefined> {
    const head = await this.#repository.lastHead(scope);
    return head === undefined ? undefined : { sequence: head.sequence, hash: head.hash };
  }

  /** How many chains this instance has appended to since it started; from memory. */
  knownChainCount(): number {
    return this.#heads.size;
  }

  /** The head this instance last appended to a scope, if it did: an anchor kept outside the table. */
  knownHead(scope: string): ChainHead | undefined {
    const head = this.#heads.get(scope);
    return head === undefined ? undefined : { sequence: head.sequence, hash: head.hash };
  }

  async #commit(scope: string, events: readonly AuditEvent[]): Promise<ChainedAuditRecord[]> {
    for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt += 1) {
      let head = this.#heads.get(scope) ?? (await this.#readHead(scope));
      const records: ChainedAuditRecord[] = [];
      for (const event of events) {
        // Verification refuses a day earlier than the record before: a record stamped just before
        // midnight that lost its race to one stamped just after takes that one's time.
        const time =
          head.time !== undefined && (utcDay(event.time) ?? "") < (utcDay(head.time) ?? "")
            ? head.time
            : event.time;
        const key = await this.#keys.current(new Date(time));
        const body = {
          ...event,
          time,
          sequence: head.sequence + 1,
          prevHash: head.hash,
          macKeyRef: key.ref,
        };
        const hash = chainHash(canonicalRecord(body));
        records.push({ ...body, hash, mac: chainMac(key.key, scope, hash) });
        head = { sequence: body.sequence, hash, time };
      }
      if (await this.#repository.appendBlock(scope, records)) {
        this.#remember(scope, head);
        const first = records[0]?.sequence ?? head.sequence;
        if (Math.floor(head.sequence / CHECKPOINT_EVERY) > Math.floor((first - 1) / CHECKPOINT_EVERY)) {
          this.#logger.info("audit chain checkpoint", { scope, sequence: head.sequence, hash: head.hash });
        }
        return records;
      }
      this.#heads.delete(scope);
      await pause(attempt);
    }
    throw new StoreUnavailableError(
      `audit chain ${scope} kept moving on: ${MAX_APPEND_ATTEMPTS} appends lost to other writers`,
    );
  }

  async #readHead(scope: string): Promise<Tip> {
    return (await this.#repository.lastHead(scope)) ?? { sequence: 0, hash: chainGenesis(scope) };
  }

  #remember(scope: string, head: Tip): void {
    this.#heads.set(scope, head);
  }
}
