import {
  type ChainKeys,
  chainGenesis,
  chainHash,
  chainMac,
  chainMacMatches,
  latestKeyDay,
  refDay,
  refKeeper,
  utcDay,
} from "../../crypto/chain-keys.ts";
import {
  type AnchorLog,
  CHAIN_BREAK_EXPLANATIONS,
  type ChainBreakReason,
  type ChainHead,
  type ChainVerification,
  canonicalRecord,
  isChainedRecordShape,
  reanchoredHead,
} from "../../domain/audit-chain.ts";
import { ValidationError } from "../../domain/errors.ts";
import type { AuditRepository } from "../../storage/audit-repository.ts";
import type { ChainWriter } from "./chain-writer.ts";

/**
 * Where a verification stopped: the next record's place, what it must link to and follow, and the
 * runs of records (first and last sequence) met so far whose keys this service no longer holds,
 * which a re-anchor further on must still attest.
 */
interface Resume {
  readonly next: number;
  readonly hash: string;
  readonly day: string;
  readonly unattested?: readonly Run[];
}

type Run = readonly [number, number];

export interface VerifyOptions {
  /** Where an earlier call stopped (its `nextCursor`). */
  readonly cursor?: string;
  /** Stop after about this long and answer with a cursor; unset walks to the end. */
  readonly budgetMs?: number;
  /** Told the keeper (`local:<fingerprint>`, `kms:<ARN>`) of every record walked, for the re-anchoring. */
  readonly onKeeper?: (keeper: string) => void;
}

export interface VerifierOptions {
  /** A record waiting longer than this to be chained is reported (`unsequenced`). */
  readonly unsequencedBoundMs: number;
  readonly anchors?: AnchorLog;
}

/** Proves a chain untouched, record by record, against the MAC keys the table never holds. */
export class ChainVerifier {
  readonly #repository: AuditRepository;
  readonly #keys: ChainKeys;
  readonly #writer: ChainWriter;
  readonly #options: VerifierOptions;

  constructor(repository: AuditRepository, keys: ChainKeys, writer: ChainWriter, options: VerifierOptions) {
    this.#repository = repository;
    this.#keys = keys;
    this.#writer = writer;
    this.#options = options;
  }

  /** Every scope with a chain, or with waiting records, or with an anchor (a chain deleted whole has one). */
  async scopes(): Promise<string[]> {
    const stored = await this.#repository.scopes();
    const anchored = (await this.#options.anchors?.scopes()) ?? [];
    return [...new Set([...stored, ...anchored])].sort();
  }

  /**
   * Walks a chain from record 1 (or from a cursor) and stops at the first record that fails. The MAC
   * check is what an attacker with write access to the table cannot pass: they can edit records and
   * recompute every hash and link, but not the MAC, whose key is not in the database. A head kept
   * outside the table catches what no record can: a tail cut off, or rewritten, after it was taken.
   * Those heads are the latest anchor, the head this instance appended, and `expectedHead`.
   *
   * A record whose key this service no longer holds (its KEK was removed after a re-wrap) cannot be
   * MAC-checked; every other check still applies, and it counts as verified only once a later
   * re-anchor record, whose MAC does verify, attests the chain through it with the hash it has here.
   * Since every hash covers the link before it, that MAC covers the records it attests.
   */
  async verify(
    scope: string,
    expectedHead?: ChainHead,
    options: VerifyOptions = {},
  ): Promise<ChainVerification> {
    const started = Date.now();
    // Taken before the walk: records chained while it walks are past what it reads, and must not
    // count as a tail the store lost.
    const known = this.#writer.knownHead(scope);
    const latestAnchor = await this.#options.anchors?.latest(scope);
    // An anchor that does not match its place in the log is no head: it is reported where the walk
    // reaches its sequence, or ends before it, after every record up to there has verified.
    const mismatched = latestAnchor !== undefined && "mismatch" in latestAnchor ? latestAnchor : undefined;
    const anchor = latestAnchor === undefined || "mismatch" in latestAnchor ? undefined : latestAnchor;
    const resume = options.cursor === undefined ? undefined : await this.#openCursor(scope, options.cursor);
    let previous: ChainHead =
      resume === undefined
        ? { sequence: 0, hash: chainGenesis(scope) }
        : { sequence: resume.next - 1, hash: resume.hash };
    let previousDay = resume?.day ?? "";
    let unattested: Run[] = [...(resume?.unattested ?? [])];
    const latest = latestKeyDay();
    const ids = new Set<string>();
    const anchorHead =
      anchor === undefined ? {} : { anchor: { sequence: anchor.sequence, hash: anchor.hash } };
    // Records after the first one still unattested are not verified, whatever else they passed.
    const verifiedThrough = () => (unattested[0] === undefined ? previous.sequence : unattested[0][0] - 1);
    const broken = (sequence: number, reason: ChainBreakReason): ChainVerification => ({
      scope,
      intact: false,
      verifiedThrough: verifiedThrough(),
      records: previous.sequence,
      ...(previous.sequence === 0 ? {} : { head: previous }),
      ...anchorHead,
      break: { sequence, reason, message: CHAIN_BREAK_EXPLANATIONS[reason] },
    });
    // A hidden or replaced anchor's first version still says how far the chain reached.
    const heads = [expectedHead, anchor, mismatched?.original].filter(
      (head): head is ChainHead => head !== undefined,
    );
    for await (const { position, record } of this.#repository.walk(scope, previous.sequence + 1)) {
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
      options.onKeeper?.(refKeeper(String(record.macKeyRef)));
      const key = await this.#keys.forRef(String(record.macKeyRef));
      const dayFails = keyDay !== recordDay || keyDay < previousDay;
      // No re-anchor attests a record that fails these, so its unknown key is the first thing wrong.
      if (key === undefined && dayFails) return broken(position, "unknown_mac_key");
      if (keyDay !== recordDay) return broken(position, "key_day_mismatch");
      if (keyDay < previousDay) return broken(position, "day_regressed");
      if (key === undefined) {
        const last = unattested.at(-1);
        if (last !== undefined && last[1] === position - 1)
          unattested[unattested.length - 1] = [last[0], position];
        else unattested.push([position, position]);
      } else if (typeof mac !== "string" || !chainMacMatches(key, scope, hash, mac)) {
        return broken(position, "mac_mismatch");
      }
      if (record.prevHash !== previous.hash) return broken(position, "link_mismatch");
      const attests = key === undefined ? undefined : reanchoredHead(record);
      if (attests !== undefined && unattested.length > 0 && attests.sequence < position) {
        if ((await this.#hashAt(scope, attests.sequence)) !== attests.hash)
          return broken(position, "link_mismatch");
        unattested = unattested
          .filter(([, last]) => last > attests.sequence)
          .map(([first, last]): Run => [Math.max(first, attests.sequence + 1), last]);
      }
      // First: where the anchor log was tampered with, that is what the operator must look at.
      if (position === mismatched?.sequence) return broken(position, "anchor_mismatch");
      if (heads.some((head) => position === head.sequence && hash !== head.hash)) {
        return broken(position, "truncated");
      }
      // Ids are checked within one call: a duplicate further apart than a call's budget goes unseen.
      if (typeof record.id === "string") {
        if (ids.has(record.id)) return broken(position, "duplicate");
        ids.add(record.id);
      }
      previous = { sequence: position, hash };
      previousDay = keyDay;
      if (options.budgetMs !== undefined && Date.now() - started >= options.budgetMs) {
        return {
          scope,
          intact: true,
          verifiedThrough: verifiedThrough(),
          records: previous.sequence,
          head: previous,
          ...anchorHead,
          nextCursor: await this.#cursor(scope, {
            next: position + 1,
            hash,
            day: keyDay,
            ...(unattested.length === 0 ? {} : { unattested }),
          }),
        };
      }
    }
    const first = unattested[0];
    if (first !== undefined) return broken(first[0], "unknown_mac_key");
    // Deleting the newest records leaves a valid shorter chain; only a head kept elsewhere shows it.
    const longest = Math.max(known?.sequence ?? 0, ...heads.map((head) => head.sequence));
    if (longest > previous.sequence) return broken(previous.sequence + 1, "truncated");
    if (mismatched !== undefined) return broken(previous.sequence + 1, "anchor_mismatch");
    const oldest = await this.#repository.oldestPending(scope);
    if (oldest !== undefined && Date.now() - Date.parse(oldest) > this.#options.unsequencedBoundMs) {
      return broken(previous.sequence + 1, "unsequenced");
    }
    return {
      scope,
      intact: true,
      verifiedThrough: previous.sequence,
      records: previous.sequence,
      ...(previous.sequence === 0 ? {} : { head: previous }),
      ...anchorHead,
    };
  }

  /** The hash of the record at `sequence`, as stored now. */
  async #hashAt(scope: string, sequence: number): Promise<unknown> {
    for await (const { position, record } of this.#repository.walk(scope, sequence)) {
      return position === sequence && typeof record === "object" && record !== null
        ? (record as { hash?: unknown }).hash
        : undefined;
    }
    return undefined;
  }

  /** A cursor is client input: it carries a MAC under today's key, so no caller can skip a walk. */
  async #cursor(scope: string, resume: Resume): Promise<string> {
    const key = await this.#keys.current(new Date());
    const payload = JSON.stringify([
      resume.next,
      resume.hash,
      resume.day,
      key.ref,
      ...(resume.unattested === undefined ? [] : [resume.unattested]),
    ]);
    const mac = chainMac(key.key, scope, `cursor:${chainHash(payload)}`);
    return Buffer.from(JSON.stringify([payload, mac])).toString("base64url");
  }

  async #openCursor(scope: string, cursor: string): Promise<Resume> {
    try {
      const [payload, mac] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown[];
      if (typeof payload === "string" && typeof mac === "string") {
        const [next, hash, day, ref, unattested] = JSON.parse(payload) as unknown[];
        const key = typeof ref === "string" ? await this.#keys.forRef(ref) : undefined;
        if (
          key !== undefined &&
          chainMacMatches(key, scope, `cursor:${chainHash(payload)}`, mac) &&
          Number.isInteger(next) &&
          typeof hash === "string" &&
          typeof day === "string"
        ) {
          return {
            next: next as number,
            hash,
            day,
            // Its MAC verified, so this is what this service wrote.
            ...(Array.isArray(unattested) ? { unattested: unattested as Run[] } : {}),
          };
        }
      }
    } catch {
      // Falls through to the same answer as any other foreign cursor.
    }
    throw new ValidationError("cursor is not valid for this verification");
  }
}
