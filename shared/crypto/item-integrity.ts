import { createHash, createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import type { KMSClient } from "@aws-sdk/client-kms";
import { KeyringUnavailableError } from "../domain/errors.ts";
import type { ItemIntegrity, ItemSeal } from "../domain/item-integrity.ts";
import { kmsGenerateMac } from "./kms-mac.ts";

/**
 * The key that authenticates authority-bearing items (tokens, bindings). It comes from the audit chain's keeper,
 * so the table never holds it, but under its own label, so it is none of the chain's day keys and a
 * MAC made with one never verifies as the other:
 *
 * - locally, HKDF-SHA256 over a KEK's item integrity subkey (kek-subkeys.ts) with this label as salt
 *   and the reference as info;
 * - on AWS, KMS `GenerateMac` under `AUDIT_MAC_KEY_ID` over this label: one call per process, cached.
 *
 * An item stores the reference (`local:<KEK fingerprint>` or `kms:<key ARN>`), so items sealed under a
 * previous local KEK still verify while that KEK is configured (`CREDENTIALS_KEK_PREVIOUS`), and the
 * KEK re-wrap re-keys them under the active one before that KEK may go (shared/services/keys/item-rekey.ts).
 */
export interface ItemKeys {
  current(): Promise<{ readonly ref: string; readonly key: Uint8Array }>;
  /** The key a stored reference names, or undefined when it names a keeper this service does not hold. */
  forRef(ref: string): Promise<Uint8Array | undefined>;
}

const LABEL = "strongbox/item-integrity/v1";
const KEY_BYTES = 32;

/** Item keys from local KEKs, each named by its fingerprint. */
export class LocalItemKeys implements ItemKeys {
  readonly #keks: ReadonlyMap<string, Uint8Array>;
  readonly #activeRef: string;
  readonly #keys = new Map<string, Uint8Array>();

  /** `keks` maps a KEK's fingerprint to its item integrity subkey. */
  constructor(keks: ReadonlyMap<string, Uint8Array>, activeId: string) {
    this.#keks = keks;
    this.#activeRef = `local:${activeId}`;
  }

  async current(): Promise<{ ref: string; key: Uint8Array }> {
    const key = await this.forRef(this.#activeRef);
    if (key === undefined) throw new KeyringUnavailableError("the active KEK cannot derive the item key");
    return { ref: this.#activeRef, key };
  }

  async forRef(ref: string): Promise<Uint8Array | undefined> {
    const cached = this.#keys.get(ref);
    if (cached !== undefined) return cached;
    const kek = ref.startsWith("local:") ? this.#keks.get(ref.slice("local:".length)) : undefined;
    if (kek === undefined) return undefined;
    // Bounded by the configured KEKs: only references naming one of them get this far.
    const key = new Uint8Array(hkdfSync("sha256", kek, LABEL, ref, KEY_BYTES));
    this.#keys.set(ref, key);
    return key;
  }
}

/** The item key from the KMS HMAC key: one GenerateMac per process, on first use. */
export class KmsItemKeys implements ItemKeys {
  readonly #client: KMSClient;
  readonly #keyId: string;
  #derived: Promise<{ ref: string; key: Uint8Array }> | undefined;

  constructor(options: { readonly client: KMSClient; readonly keyId: string }) {
    this.#client = options.client;
    this.#keyId = options.keyId;
  }

  current(): Promise<{ ref: string; key: Uint8Array }> {
    if (this.#derived === undefined) {
      const derived = kmsGenerateMac(this.#client, this.#keyId, LABEL, "item integrity key").then(
        ({ arn, mac }) => ({ ref: `kms:${arn}`, key: mac }),
      );
      // A failed derivation must not stick, or one KMS blip would refuse every token until restart.
      derived.catch(() => {
        if (this.#derived === derived) this.#derived = undefined;
      });
      this.#derived = derived;
    }
    return this.#derived;
  }

  async forRef(ref: string): Promise<Uint8Array | undefined> {
    if (!ref.startsWith("kms:")) return undefined;
    const { ref: ours, key } = await this.current();
    // A reference naming any other key (an attacker's, shared with this role) is not trusted.
    return ref === ours ? key : undefined;
  }
}

/** Verified items remembered per process, so a warm request re-checks a token by one hash lookup. */
const MAX_VERIFIED = 4096;

/**
 * The keyed-MAC primitive behind the domain's ItemIntegrity port. What a MAC covers is the caller's
 * canonical content; this class only keys, computes and compares.
 */
export class ItemMacs implements ItemIntegrity {
  readonly #keys: ItemKeys;
  /** Digests of (reference, MAC, content) triples that verified; a tampered item never gets in. */
  readonly #verified = new Set<string>();

  constructor(keys: ItemKeys) {
    this.#keys = keys;
  }

  async seal(content: string): Promise<ItemSeal> {
    const { ref, key } = await this.#keys.current();
    return { mac: mac(key, content), macKeyRef: ref };
  }

  async verify(content: string, seal: ItemSeal): Promise<boolean> {
    const digest = createHash("sha256")
      .update(`${LABEL}\0${seal.macKeyRef}\0${seal.mac}\0`)
      .update(content)
      .digest("base64");
    if (this.#verified.has(digest)) return true;
    const key = await this.#keys.forRef(seal.macKeyRef);
    if (key === undefined) return false;
    const expected = Buffer.from(mac(key, content), "hex");
    const given = /^[0-9a-f]{64}$/.test(seal.mac) ? Buffer.from(seal.mac, "hex") : Buffer.alloc(0);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
    if (this.#verified.size >= MAX_VERIFIED) {
      const oldest = this.#verified.values().next();
      if (oldest.done !== true) this.#verified.delete(oldest.value);
    }
    this.#verified.add(digest);
    return true;
  }
}

function mac(key: Uint8Array, content: string): string {
  return createHmac("sha256", key).update(`${LABEL}\0`).update(content).digest("hex");
}
