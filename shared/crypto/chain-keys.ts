import { createHash, createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import { KMSClient } from "@aws-sdk/client-kms";
import { KeyringUnavailableError } from "../domain/errors.ts";
import { type ItemKeys, KmsItemKeys, LocalItemKeys } from "./item-integrity.ts";
import { kmsRequestHandler } from "./kms-keyring.ts";
import { kmsGenerateMac } from "./kms-mac.ts";

/**
 * Keys that authenticate the audit chain. They never enter the database: a record stores only a
 * reference (`macKeyRef`) naming the keeper and the UTC day the key belongs to, and the key is derived
 * from that reference by a keeper the database cannot reach.
 *
 * - Locally the keeper is the KEK: HKDF-SHA256 over the KEK's audit chain subkey (kek-subkeys.ts),
 *   with the reference as `info`.
 * - On AWS it is a KMS HMAC key (`AUDIT_MAC_KEY_ID`): the day's key is KMS `GenerateMac` over a fixed
 *   label and the day. HMAC is deterministic, so the verifier re-derives the same key the writer used.
 *
 * One key per day bounds the KMS traffic: one GenerateMac per instance per day, never one per record,
 * which would break the read path's KMS budget and feed CloudTrail its own audit appends. It bounds
 * the damage of a key copied out of a process's memory only because verification enforces it: a
 * record's reference must name the UTC day of the record's own time, days never go backwards along a
 * chain, and references dated in the future are refused (here too, so no keeper is asked for a key
 * of a day that has not come). A leaked key of day D can then forge records dated D only, which the
 * chain can hold only after every record of an earlier day and before every record of a later one.
 */
export interface ChainKeys {
  /** The key new records are authenticated with, and the reference stored beside them. */
  current(at: Date): Promise<ChainKey>;
  /** The key a stored reference names, or undefined when it names a keeper this service does not hold. */
  forRef(ref: string): Promise<Uint8Array | undefined>;
  /**
   * The same keeper's key for authority-bearing items (tokens): drawn under its own label, so it is
   * never one of the chain's day keys, and one per process rather than one per day.
   */
  itemKeys(): ItemKeys;
  /**
   * The keepers this service holds besides the one new records are keyed by, as references name
   * them (`local:<fingerprint>`): locally the previous KEKs; on AWS none, since rotating KMS_KEY_ID
   * leaves AUDIT_MAC_KEY_ID as it is.
   */
  previousKeepers(): readonly string[];
}

export interface ChainKey {
  readonly ref: string;
  readonly key: Uint8Array;
}

const LABEL = "strongbox/audit-chain/v1";
const KEY_BYTES = 32;
/**
 * Derived keys kept per process; a day's key is reused for every record of that day. Over a year's
 * worth, so that verify calls resuming a walk over a long chain derive each day once per process.
 */
const MAX_CACHED_KEYS = 400;

const day = (at: Date) => at.toISOString().slice(0, 10);
const DAY = /^\d{4}-\d{2}-\d{2}$/;
/** How far ahead of this clock a writer's clock may run before its records count as future-dated. */
export const CLOCK_SKEW_MS = 5 * 60_000;

/** The UTC day a time falls on, or undefined when it is not a time. */
export function utcDay(time: unknown): string | undefined {
  if (typeof time !== "string") return undefined;
  const at = new Date(time);
  return Number.isNaN(at.getTime()) ? undefined : day(at);
}

/** The last day whose keys exist yet, by this clock. */
export const latestKeyDay = (now = Date.now()) => day(new Date(now + CLOCK_SKEW_MS));

/** The keeper a reference names (all of it before the day), e.g. `local:<fingerprint>`. */
export const refKeeper = (ref: string) => ref.slice(0, ref.lastIndexOf(":"));

/** The day a reference names (its part after the last colon), or undefined when it names none. */
export function refDay(ref: unknown): string | undefined {
  if (typeof ref !== "string") return undefined;
  const named = ref.slice(ref.lastIndexOf(":") + 1);
  return DAY.test(named) && utcDay(`${named}T00:00:00Z`) === named ? named : undefined;
}

/** Splits `<prefix><keeper>:<day>`; the keeper may itself contain colons (KMS ARNs do). */
function parseRef(ref: string, prefix: string): { keeper: string; day: string } | undefined {
  if (!ref.startsWith(prefix)) return undefined;
  const cut = ref.lastIndexOf(":");
  const keeper = ref.slice(prefix.length, cut);
  const named = ref.slice(cut + 1);
  return keeper !== "" && DAY.test(named) && named <= latestKeyDay() ? { keeper, day: named } : undefined;
}

class KeyCache {
  readonly #keys = new Map<string, Promise<Uint8Array>>();

  get(ref: string, derive: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const cached = this.#keys.get(ref);
    if (cached !== undefined) return cached;
    if (this.#keys.size >= MAX_CACHED_KEYS) {
      const oldest = this.#keys.keys().next();
      if (oldest.done !== true) this.#keys.delete(oldest.value);
    }
    const pending = derive();
    this.#keys.set(ref, pending);
    // A failed derivation must not stick, or one KMS blip would stop audit appends until restart.
    pending.catch(() => this.#keys.delete(ref));
    return pending;
  }
}

/** Chain keys derived from local KEKs, each named by its fingerprint, so old days verify after KEK rotation. */
export class LocalChainKeys implements ChainKeys {
  readonly #keks: ReadonlyMap<string, Uint8Array>;
  readonly #itemKeks: ReadonlyMap<string, Uint8Array>;
  readonly #activeId: string;
  readonly #cache = new KeyCache();
  #itemKeys: ItemKeys | undefined;

  /**
   * `keks` maps a KEK's fingerprint to its audit chain subkey, `itemKeks` to its item integrity subkey
   * (kek-subkeys.ts), the active one first.
   */
  constructor(
    keks: ReadonlyMap<string, Uint8Array>,
    itemKeks: ReadonlyMap<string, Uint8Array>,
    activeId: string,
  ) {
    this.#keks = keks;
    this.#itemKeks = itemKeks;
    this.#activeId = activeId;
  }

  itemKeys(): ItemKeys {
    this.#itemKeys ??= new LocalItemKeys(this.#itemKeks, this.#activeId);
    return this.#itemKeys;
  }

  previousKeepers(): readonly string[] {
    return [...this.#keks.keys()].filter((id) => id !== this.#activeId).map((id) => `local:${id}`);
  }

  async current(at: Date): Promise<ChainKey> {
    const ref = `local:${this.#activeId}:${day(at)}`;
    const key = await this.forRef(ref);
    if (key === undefined) throw new KeyringUnavailableError("the active KEK cannot derive an audit key");
    return { ref, key };
  }

  async forRef(ref: string): Promise<Uint8Array | undefined> {
    const parsed = parseRef(ref, "local:");
    const kek = parsed === undefined ? undefined : this.#keks.get(parsed.keeper);
    if (kek === undefined) return undefined;
    return this.#cache.get(ref, async () => new Uint8Array(hkdfSync("sha256", kek, LABEL, ref, KEY_BYTES)));
  }
}

/** Chain keys from a KMS HMAC key: one GenerateMac per day's key, cached. */
export class KmsChainKeys implements ChainKeys {
  readonly #client: KMSClient;
  readonly #keyId: string;
  readonly #cache = new KeyCache();
  /** The key ARN KMS reports for `AUDIT_MAC_KEY_ID`; only references naming it are trusted. */
  #arn: Promise<string> | undefined;
  #itemKeys: ItemKeys | undefined;

  constructor(options: { readonly client: KMSClient; readonly keyId: string }) {
    this.#client = options.client;
    this.#keyId = options.keyId;
  }

  itemKeys(): ItemKeys {
    this.#itemKeys ??= new KmsItemKeys({ client: this.#client, keyId: this.#keyId });
    return this.#itemKeys;
  }

  previousKeepers(): readonly string[] {
    return [];
  }

  async current(at: Date): Promise<ChainKey> {
    const ref = `kms:${await this.#resolveArn(at)}:${day(at)}`;
    const key = await this.forRef(ref);
    if (key === undefined) throw new KeyringUnavailableError("the audit MAC key cannot derive a key");
    return { ref, key };
  }

  async forRef(ref: string): Promise<Uint8Array | undefined> {
    const parsed = parseRef(ref, "kms:");
    if (parsed === undefined) return undefined;
    // A reference naming any other key (say, an attacker's key shared with this role) is not trusted.
    if (parsed.keeper !== (await this.#resolveArn(new Date()))) return undefined;
    return this.#cache.get(ref, async () => (await this.#generateMac(parsed.keeper, parsed.day)).mac);
  }

  /** The first derivation learns the ARN behind an alias and seeds the cache with that day's key. */
  #resolveArn(at: Date): Promise<string> {
    this.#arn ??= this.#generateMac(this.#keyId, day(at)).then(({ arn, mac }) => {
      void this.#cache.get(`kms:${arn}:${day(at)}`, async () => mac);
      return arn;
    });
    this.#arn.catch(() => {
      this.#arn = undefined;
    });
    return this.#arn;
  }

  #generateMac(keyId: string, keyDay: string): Promise<{ arn: string; mac: Uint8Array }> {
    return kmsGenerateMac(this.#client, keyId, `${LABEL}\0${keyDay}`, "audit key");
  }
}

export function createKmsChainKeys(options: {
  readonly region: string;
  readonly keyId: string;
  /** Only for pointing the SDK at a KMS-protocol test endpoint. */
  readonly endpoint?: string;
  readonly requestTimeoutMs?: number;
}): KmsChainKeys {
  const client = new KMSClient({
    region: options.region,
    ...kmsRequestHandler(options.requestTimeoutMs),
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
  });
  return new KmsChainKeys({ client, keyId: options.keyId });
}

/** SHA-256 of a record's canonical bytes, hex: what the next record links to. */
export function chainHash(canonical: string): string {
  return createHash("sha256").update(`${LABEL}\0`).update(canonical).digest("hex");
}

/**
 * What record 1 of a scope links to. Each scope starts from its own genesis, so a chain copied whole
 * into another scope's partition fails at its first link instead of verifying as that scope's.
 */
export function chainGenesis(scope: string): string {
  return createHash("sha256").update(`${LABEL}\0genesis\0`).update(scope).digest("hex");
}

/**
 * The record's MAC: HMAC-SHA256 over its scope and hash under the day's chain key, hex. The scope is
 * in the MAC input rather than in the key's derivation so that one day key (one KMS call) still
 * serves every scope, while a MAC made for one scope never verifies in another.
 */
export function chainMac(key: Uint8Array, scope: string, hash: string): string {
  return createHmac("sha256", key).update(`${scope}\0${hash}`).digest("hex");
}

export function chainMacMatches(key: Uint8Array, scope: string, hash: string, mac: string): boolean {
  const expected = Buffer.from(chainMac(key, scope, hash), "hex");
  const given = /^[0-9a-f]{64}$/.test(mac) ? Buffer.from(mac, "hex") : Buffer.alloc(0);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
