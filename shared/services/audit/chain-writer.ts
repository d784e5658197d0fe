import { type ChainKeys, chainGenesis, chainHash, chainMac, utcDay } from "../../crypto/chain-keys.ts";
import { newRecordId } from "../../crypto/record-id.ts";
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
import type { AuditRepository, StoredBlock } from "../../storage/audit-repository.ts";

/**
 * Appends lost to other sequencers are retried on a fresh head. Someone wins every round, so the chain
 * always moves on; this bounds how long one batch waits behind a crowd before it fails.
 */
const MAX_APPEND_ATTEMPTS = 50;
/** Each time the chain passes a multiple of this, the head goes to the log as well. */
const CHECKPOINT_EVERY = 1000;
/** Scopes whose head and recent ids this instance keeps; the least recently used go past this. */
export const MAX_KNOWN_SCOPES = 1024;
/** Recent blocks remembered per scope, for telling records already chained without a read. */
const RECENT_BLOCKS = 32;

/** An event to be chained, with the id that makes chaining it twice detectable. */
export type ChainEntry = AuditEvent & { readonly id: string };
export type Integration = "sequenced" | "duplicate";

/** A head as the writer needs it: with the newest record's time, which the next may not precede by a day. */
type Tip = ChainHead & { readonly time?: string; readonly hw?: string };

/** What this instance knows of a scope's chain: its head and the ids of its newest blocks. */
interface Known {
  tip: Tip;
  /** Newest last. Complete back to record 1 when `fromStart`. */
  readonly recent: { readonly hw: string; readonly ids: ReadonlySet<string> }[];
  fromStart: boolean;
}

const pause = (attempt: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** attempt)));

interface Waiting {
  readonly entry: ChainEntry;
  readonly bytes: number;
  resolve(result: { state: Integration; record?: ChainedAuditRecord }): void;
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

const later = (a: string | undefined, b: string | undefined) =>
  a === undefined ? b : b === undefined ? a : a > b ? a : b;

/**
 * Builds the chains: the sequencer's engine. Entries for one scope are group-committed: while one
 * block's write is in flight, newly arriving entries wait, and the next write commits all of them as
 * one block (a record's hash needs its predecessor's, so one scope's writes go one at a time). A block
 * is one conditional put at the next sequence number, so two sequencers at once (a redelivered batch)
 * cannot both extend the chain from one head: the loser re-reads the head, drops the entries the
 * winner chained (by id), and tries again. An entry already in the chain comes back as `duplicate`.
 */
export class ChainWriter implements ChainHeads {
  /** Bounded: scopes come from records, and records can name any scope a caller reached. */
  readonly #known = new Map<string, Known>();
  readonly #waiting = new Map<string, Waiting[]>();
  readonly #writing = new Set<string>();
  /** Scopes this instance appended to, for the anchors; bounded like the heads. */
  readonly #moved = new Set<string>();

  readonly #repository: AuditRepository;
  readonly #keys: ChainKeys;
  readonly #logger: Logger;

  constructor(repository: AuditRepository, keys: ChainKeys, logger: Logger) {
    this.#repository = repository;
    this.#keys = keys;
    this.#logger = logger;
  }

  /** Chains a fresh event at once, under a new id: for tools and tests that write a chain directly. */
  async append(raw: AuditEvent): Promise<ChainedAuditRecord> {
    const result = await this.integrate({ ...raw, id: newRecordId() });
    if (result.record === undefined) throw new StoreUnavailableError("a fresh record id was already chained");
    return result.record;
  }

  /** Chains one entry, unless its id is already in the chain. */
  integrate(raw: ChainEntry): Promise<{ state: Integration; record?: ChainedAuditRecord }> {
    const entry = capAuditFields(raw);
    const scope = entry.tenantId;
    const bytes = estimatedRecordBytes(entry);
    if (bytes > MAX_BLOCK_BYTES) {
      return Promise.reject(
        new AuditRecordTooLargeError(
          `an audit record of ${bytes} bytes for ${entry.action} exceeds the ${MAX_BLOCK_BYTES}-byte block limit`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const queue = this.#waiting.get(scope) ?? [];
      queue.push({ entry, bytes, resolve, reject });
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
          const results = await this.#commit(
            scope,
            block.map((waiting) => waiting.entry),
          );
          for (const [i, waiting] of block.entries()) waiting.resolve(results[i] ?? { state: "duplicate" });
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

  /** The scopes this instance appended to, least recently first. */
  movedScopes(): string[] {
    return [...this.#moved];
  }

  /** How many chains this instance knows the head of (at most MAX_KNOWN_SCOPES); from memory. */
  knownChainCount(): number {
    return this.#known.size;
  }

  /** The head this instance last appended or read for a scope, if it still knows it. */
  knownHead(scope: string): ChainHead | undefined {
    const known = this.#known.get(scope);
    return known === undefined || known.tip.sequence === 0
      ? undefined
      : { sequence: known.tip.sequence, hash: known.tip.hash };
  }

  async #commit(
    scope: string,
    entries: readonly ChainEntry[],
  ): Promise<{ state: Integration; record?: ChainedAuditRecord }[]> {
    const oldest = entries.reduce(
      (min, entry) => (entry.time < min ? entry.time : min),
      entries[0]?.time ?? "",
    );
    for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt += 1) {
      const known = await this.#knownFor(scope, oldest);
      const chained = (id: string) => known.recent.some((block) => block.ids.has(id));
      let head = known.tip;
      const results: { state: Integration; record?: ChainedAuditRecord }[] = [];
      const records: ChainedAuditRecord[] = [];
      const inBlock = new Set<string>();
      let hw = head.hw;
      for (const entry of entries) {
        if (chained(entry.id) || inBlock.has(entry.id)) {
          results.push({ state: "duplicate" });
          continue;
        }
        inBlock.add(entry.id);
        // Verification refuses a day earlier than the record before: a record stamped just before
        // midnight that reaches the sequencer after one stamped just after takes that one's time.
        const time =
          head.time !== undefined && (utcDay(entry.time) ?? "") < (utcDay(head.time) ?? "")
            ? head.time
            : entry.time;
        const key = await this.#keys.current(new Date(time));
        const body = {
          ...entry,
          time,
          sequence: head.sequence + 1,
          prevHash: head.hash,
          macKeyRef: key.ref,
        };
        const hash = chainHash(canonicalRecord(body));
        const record = { ...body, hash, mac: chainMac(key.key, scope, hash) };
        records.push(record);
        results.push({ state: "sequenced", record });
        head = { sequence: body.sequence, hash, time };
        hw = later(hw, time);
      }
      if (records.length === 0) return results;
      if (await this.#repository.appendBlock(scope, records, hw)) {
        const tip = { ...head, ...(hw === undefined ? {} : { hw }) };
        this.#remember(scope, tip, hw ?? "", inBlock);
        this.#moved.delete(scope);
        this.#moved.add(scope);
        if (this.#moved.size > MAX_KNOWN_SCOPES) {
          const coldest = this.#moved.values().next();
          if (coldest.done !== true) this.#moved.delete(coldest.value);
        }
        const first = records[0]?.sequence ?? head.sequence;
        if (Math.floor(head.sequence / CHECKPOINT_EVERY) > Math.floor((first - 1) / CHECKPOINT_EVERY)) {
          this.#logger.info("audit chain checkpoint", { scope, sequence: head.sequence, hash: head.hash });
        }
        return results;
      }
      this.#known.delete(scope);
      await pause(attempt);
    }
    throw new StoreUnavailableError(
      `audit chain ${scope} kept moving on: ${MAX_APPEND_ATTEMPTS} appends lost to other writers`,
    );
  }

  /**
   * The scope's head and the ids of every block that could hold an entry written at `oldest` or
   * later: from memory when what is remembered reaches back that far, otherwise read back from the
   * head while blocks' high-water times are not older. A block holding a record has a high-water time
   * at least that record's, so no block further back can hold one.
   */
  async #knownFor(scope: string, oldest: string): Promise<Known> {
    const cached = this.#known.get(scope);
    if (cached !== undefined) {
      const first = cached.recent[0];
      if (cached.fromStart || (first !== undefined && first.hw < oldest)) {
        // Most recently used last, so the bound drops the coldest scope.
        this.#known.delete(scope);
        this.#known.set(scope, cached);
        return cached;
      }
    }
    const recent: { hw: string; ids: Set<string> }[] = [];
    let tip: Tip | undefined;
    let fromStart = true;
    for await (const block of this.#repository.recentBlocks(scope)) {
      tip ??= this.#tipOf(block);
      recent.unshift({ hw: block.hw ?? "", ids: new Set(idsOf(block)) });
      if (block.hw === undefined || block.hw < oldest) {
        fromStart = false;
        break;
      }
    }
    // This commit needs every block read; what is remembered is only the newest of them.
    const known: Known = { tip: tip ?? { sequence: 0, hash: chainGenesis(scope) }, recent, fromStart };
    const kept = recent.slice(-RECENT_BLOCKS);
    this.#store(scope, {
      tip: known.tip,
      recent: kept,
      fromStart: fromStart && kept.length === recent.length,
    });
    return known;
  }

  #tipOf(block: StoredBlock): Tip {
    const last = block.records.at(-1);
    const record = last?.record as Partial<ChainedAuditRecord> | undefined;
    return {
      sequence: last?.position ?? block.first - 1,
      // A malformed newest record still fixes where the chain goes on; verification reports it.
      hash: typeof record?.hash === "string" ? record.hash : "",
      ...(typeof record?.time === "string" ? { time: record.time } : {}),
      ...(block.hw === undefined ? {} : { hw: block.hw }),
    };
  }

  #remember(scope: string, tip: Tip, hw: string, ids: ReadonlySet<string>): void {
    const known = this.#known.get(scope) ?? { tip, recent: [], fromStart: false };
    known.tip = tip;
    known.recent.push({ hw, ids });
    if (known.recent.length > RECENT_BLOCKS) {
      known.recent.splice(0, known.recent.length - RECENT_BLOCKS);
      known.fromStart = false;
    }
    this.#store(scope, known);
  }

  #store(scope: string, known: Known): void {
    this.#known.delete(scope);
    this.#known.set(scope, known);
    if (this.#known.size > MAX_KNOWN_SCOPES) {
      const coldest = this.#known.keys().next();
      if (coldest.done !== true) this.#known.delete(coldest.value);
    }
  }
}

function idsOf(block: StoredBlock): string[] {
  const ids: string[] = [];
  for (const { record } of block.records) {
    const id = (record as { id?: unknown } | null)?.id;
    if (typeof id === "string") ids.push(id);
  }
  return ids;
}
