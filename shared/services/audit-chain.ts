import { type ChainKeys, chainHash, chainMac, chainMacMatches } from "../crypto/chain-keys.ts";
import {
  CHAIN_BREAK_EXPLANATIONS,
  type ChainBreakReason,
  type ChainedAuditRecord,
  type ChainHead,
  type ChainVerification,
  canonicalRecord,
  GENESIS_HASH,
} from "../domain/audit-chain.ts";
import { StoreUnavailableError } from "../domain/errors.ts";
import type { AuditEvent } from "../domain/types.ts";
import type { Logger } from "../observability/logger.ts";
import type { AuditRepository } from "../storage/audit-repository.ts";

/**
 * Appends lost to other instances are retried on a fresh head. Someone wins every round, so the chain
 * always moves on; this bounds how long one request waits behind a crowd before it fails closed.
 */
const MAX_APPEND_ATTEMPTS = 50;
/** Every this many records the head goes to the log, an anchor outside the database (see README). */
const CHECKPOINT_EVERY = 1000;
/** /health shows at most this many heads: the chains this instance appended to most recently. */
const MAX_REPORTED_HEADS = 20;

const pause = (attempt: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** attempt)));

/**
 * The audit chains of one service instance. Each instance keeps the last head it knows per scope, so
 * an append is normally one conditional put of record N+1. Appends of one scope within the instance
 * are queued (a record's hash needs its predecessor's), and an append that loses a race with another
 * instance re-reads the head and tries again.
 */
export class AuditChain {
  readonly #heads = new Map<string, ChainHead>();
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly repository: AuditRepository,
    private readonly keys: ChainKeys,
    private readonly logger: Logger,
  ) {}

  append(event: AuditEvent): Promise<ChainedAuditRecord> {
    const scope = event.tenantId;
    const run = (this.#queues.get(scope) ?? Promise.resolve()).then(() => this.#appendNow(event));
    const settled = run.catch(() => undefined);
    this.#queues.set(scope, settled);
    void settled.then(() => {
      if (this.#queues.get(scope) === settled) this.#queues.delete(scope);
    });
    return run;
  }

  /** Every scope with a chain, for verifying them all. */
  scopes(): Promise<string[]> {
    return this.repository.scopes();
  }

  /** The newest record's place and hash as stored, whichever instance wrote it. */
  storedHead(scope: string): Promise<ChainHead | undefined> {
    return this.repository.lastHead(scope);
  }

  /** The heads this instance knows, newest first; read from memory, so it costs nothing to show. */
  knownHeads(): { scope: string; sequence: number; hash: string }[] {
    return [...this.#heads]
      .reverse()
      .slice(0, MAX_REPORTED_HEADS)
      .map(([scope, head]) => ({ scope, ...head }));
  }

  /**
   * Walks a chain from record 1 and stops at the first record that fails. The MAC check is what an
   * attacker with write access to the table cannot pass: they can edit records and recompute every
   * hash and link, but not the MAC, whose key is not in the database.
   */
  async verify(scope: string): Promise<ChainVerification> {
    let previous: ChainHead = { sequence: 0, hash: GENESIS_HASH };
    const broken = (sequence: number, reason: ChainBreakReason): ChainVerification => ({
      scope,
      intact: false,
      verifiedThrough: previous.sequence,
      records: previous.sequence,
      ...(previous.sequence === 0 ? {} : { head: previous }),
      break: { sequence, reason, message: CHAIN_BREAK_EXPLANATIONS[reason] },
    });
    for await (const { position, record } of this.repository.walk(scope)) {
      const expected = previous.sequence + 1;
      if (position !== expected) return broken(expected, "missing");
      if (record.sequence !== position) return broken(position, "misplaced");
      const { hash, mac, ...body } = record;
      if (typeof hash !== "string" || chainHash(canonicalRecord(body)) !== hash) {
        return broken(position, "hash_mismatch");
      }
      const key = typeof record.macKeyRef === "string" ? await this.keys.forRef(record.macKeyRef) : undefined;
      if (key === undefined) return broken(position, "unknown_mac_key");
      if (typeof mac !== "string" || !chainMacMatches(key, hash, mac))
        return broken(position, "mac_mismatch");
      if (record.prevHash !== previous.hash) return broken(position, "link_mismatch");
      previous = { sequence: position, hash };
    }
    // Deleting the newest records leaves a valid shorter chain; only a head kept elsewhere shows it.
    const known = this.#heads.get(scope);
    if (known !== undefined && known.sequence > previous.sequence) {
      return broken(previous.sequence + 1, "truncated");
    }
    return {
      scope,
      intact: true,
      verifiedThrough: previous.sequence,
      records: previous.sequence,
      ...(previous.sequence === 0 ? {} : { head: previous }),
    };
  }

  async #appendNow(event: AuditEvent): Promise<ChainedAuditRecord> {
    const scope = event.tenantId;
    for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt += 1) {
      const head = this.#heads.get(scope) ?? (await this.#readHead(scope));
      const key = await this.keys.current(new Date(event.time));
      const body = { ...event, sequence: head.sequence + 1, prevHash: head.hash, macKeyRef: key.ref };
      const hash = chainHash(canonicalRecord(body));
      const record: ChainedAuditRecord = { ...body, hash, mac: chainMac(key.key, hash) };
      if (await this.repository.appendIfNext(scope, record)) {
        this.#remember(scope, { sequence: record.sequence, hash });
        if (record.sequence % CHECKPOINT_EVERY === 0) {
          this.logger.info("audit chain checkpoint", { scope, sequence: record.sequence, hash });
        }
        return record;
      }
      this.#heads.delete(scope);
      await pause(attempt);
    }
    throw new StoreUnavailableError(
      `audit chain ${scope} kept moving on: ${MAX_APPEND_ATTEMPTS} appends lost to other writers`,
    );
  }

  async #readHead(scope: string): Promise<ChainHead> {
    return (await this.repository.lastHead(scope)) ?? { sequence: 0, hash: GENESIS_HASH };
  }

  #remember(scope: string, head: ChainHead): void {
    // Re-inserted so that the map's order is the order of last appends.
    this.#heads.delete(scope);
    this.#heads.set(scope, head);
  }
}
