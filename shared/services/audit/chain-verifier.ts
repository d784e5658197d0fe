import {
  type ChainKeys,
  chainGenesis,
  chainHash,
  chainMacMatches,
  latestKeyDay,
  refDay,
  utcDay,
} from "../../crypto/chain-keys.ts";
import {
  CHAIN_BREAK_EXPLANATIONS,
  type ChainBreakReason,
  type ChainHead,
  type ChainVerification,
  canonicalRecord,
  isChainedRecordShape,
} from "../../domain/audit-chain.ts";
import type { AuditRepository } from "../../storage/audit-repository.ts";
import type { ChainWriter } from "./chain-writer.ts";

/** Proves a chain untouched, record by record, against the MAC keys the table never holds. */
export class ChainVerifier {
  readonly #repository: AuditRepository;
  readonly #keys: ChainKeys;
  readonly #writer: ChainWriter;

  constructor(repository: AuditRepository, keys: ChainKeys, writer: ChainWriter) {
    this.#repository = repository;
    this.#keys = keys;
    this.#writer = writer;
  }

  /** Every scope with a chain, for verifying them all. */
  scopes(): Promise<string[]> {
    return this.#repository.scopes();
  }

  /**
   * Walks a chain from record 1 and stops at the first record that fails. The MAC check is what an
   * attacker with write access to the table cannot pass: they can edit records and recompute every
   * hash and link, but not the MAC, whose key is not in the database. A head recorded elsewhere
   * (`expectedHead`) catches what no record can: a tail cut off, or rewritten, after it was taken.
   */
  async verify(scope: string, expectedHead?: ChainHead): Promise<ChainVerification> {
    // Taken before the walk: records this instance appends while it walks are past what it reads, and
    // must not count as a tail the store lost.
    const known = this.#writer.knownHead(scope);
    let previous: ChainHead = { sequence: 0, hash: chainGenesis(scope) };
    let previousDay = "";
    const latest = latestKeyDay();
    const broken = (sequence: number, reason: ChainBreakReason): ChainVerification => ({
      scope,
      intact: false,
      verifiedThrough: previous.sequence,
      records: previous.sequence,
      ...(previous.sequence === 0 ? {} : { head: previous }),
      break: { sequence, reason, message: CHAIN_BREAK_EXPLANATIONS[reason] },
    });
    for await (const { position, record } of this.#repository.walk(scope)) {
      const expected = previous.sequence + 1;
      if (position !== expected) return broken(expected, "missing");
      if (!isChainedRecordShape(record)) return broken(position, "malformed");
      if (record.sequence !== position) return broken(position, "misplaced");
      if (record.tenantId !== scope) return broken(position, "foreign_scope");
      const { hash, mac, ...body } = record;
      if (typeof hash !== "string" || chainHash(canonicalRecord(body)) !== hash) {
        return broken(position, "hash_mismatch");
      }
      const keyDay = refDay(record.macKeyRef);
      if (keyDay === undefined) return broken(position, "unknown_mac_key");
      const recordDay = utcDay(record.time);
      if (keyDay > latest || (recordDay !== undefined && recordDay > latest)) {
        return broken(position, "future_dated");
      }
      const key = await this.#keys.forRef(String(record.macKeyRef));
      if (key === undefined) return broken(position, "unknown_mac_key");
      if (keyDay !== recordDay) return broken(position, "key_day_mismatch");
      if (keyDay < previousDay) return broken(position, "day_regressed");
      if (typeof mac !== "string" || !chainMacMatches(key, scope, hash, mac))
        return broken(position, "mac_mismatch");
      if (record.prevHash !== previous.hash) return broken(position, "link_mismatch");
      if (position === expectedHead?.sequence && hash !== expectedHead.hash)
        return broken(position, "truncated");
      previous = { sequence: position, hash };
      previousDay = keyDay;
    }
    // Deleting the newest records leaves a valid shorter chain; only a head kept elsewhere shows it.
    const longest = Math.max(known?.sequence ?? 0, expectedHead?.sequence ?? 0);
    if (longest > previous.sequence) return broken(previous.sequence + 1, "truncated");
    return {
      scope,
      intact: true,
      verifiedThrough: previous.sequence,
      records: previous.sequence,
      ...(previous.sequence === 0 ? {} : { head: previous }),
    };
  }
}
