import { randomBytes } from "node:crypto";
import { DecryptError, KekMismatchError } from "../domain/errors.ts";
import { aesGcmOpen, aesGcmSeal } from "./aead.ts";
import { type ChainKeys, LocalChainKeys } from "./chain-keys.ts";
import type { LocalKekMaterial } from "./kek-source.ts";
import { type KekPurpose, kekSubkey } from "./kek-subkeys.ts";
import {
  type DataKeyContext,
  encryptionContext,
  type GeneratedDataKey,
  type Keyring,
  type WrappedKey,
} from "./keyring.ts";

const DEK_BYTES = 32;

/** A one-way, non-secret name for a KEK: safe to store beside every DEK and to print in errors. */
export function kekFingerprint(kek: Uint8Array): string {
  return `kek-${Buffer.from(kekSubkey(kek, "fingerprint")).toString("hex").slice(0, 16)}`;
}

function contextAad(context: DataKeyContext): Uint8Array {
  const pairs = Object.entries(encryptionContext(context)).sort(([a], [b]) => a.localeCompare(b));
  return new TextEncoder().encode(JSON.stringify(pairs));
}

/** Wraps DEKs with a KEK held in process memory, for self-hosting and development. */
export class LocalKeyring implements Keyring {
  readonly kind = "local";
  readonly activeKekId: string;
  readonly kekIds: readonly string[];
  /** Per KEK fingerprint, the KEK's wrapping subkey; the KEKs themselves are not kept. */
  readonly #wrapKeys: ReadonlyMap<string, Uint8Array>;
  readonly #chainKeys: ReadonlyMap<string, Uint8Array>;
  readonly #itemKeys: ReadonlyMap<string, Uint8Array>;
  readonly #active: Uint8Array;

  constructor(material: Pick<LocalKekMaterial, "active" | "previous">) {
    this.activeKekId = kekFingerprint(material.active);
    const byId = new Map<string, Uint8Array>([[this.activeKekId, material.active]]);
    for (const previous of material.previous) byId.set(kekFingerprint(previous), previous);
    const subkeys = (purpose: KekPurpose) =>
      new Map([...byId].map(([kekId, kek]) => [kekId, kekSubkey(kek, purpose)] as const));
    this.#wrapKeys = subkeys("wrap");
    this.#chainKeys = subkeys("auditChain");
    this.#itemKeys = subkeys("itemIntegrity");
    this.#active = kekSubkey(material.active, "wrap");
    this.kekIds = [...byId.keys()];
  }

  async generateDataKey(context: DataKeyContext): Promise<GeneratedDataKey> {
    const plaintext = new Uint8Array(randomBytes(DEK_BYTES));
    return { plaintext, wrapped: this.#wrap(plaintext, context) };
  }

  async unwrap(wrapped: WrappedKey, context: DataKeyContext): Promise<Uint8Array> {
    const kek = this.#wrapKeys.get(wrapped.kekId);
    if (kek === undefined) {
      throw new KekMismatchError(context.tenantId, context.dekVersion, wrapped.kekId, this.kekIds);
    }
    const plaintext = aesGcmOpen(kek, wrapped.ciphertext, contextAad(context));
    if (plaintext === undefined) {
      throw new DecryptError(
        `tenant ${context.tenantId}'s DEK v${context.dekVersion} failed authentication under KEK ${wrapped.kekId}`,
      );
    }
    return plaintext;
  }

  async rewrap(wrapped: WrappedKey, context: DataKeyContext): Promise<WrappedKey> {
    return this.#wrap(await this.unwrap(wrapped, context), context);
  }

  /** The audit chain's keys, derived from these same KEKs (their own subkeys) so that the database never holds them. */
  chainKeys(): ChainKeys {
    return new LocalChainKeys(this.#chainKeys, this.#itemKeys, this.activeKekId);
  }

  async probe(): Promise<readonly string[]> {
    // The KEKs live in memory, so they are usable whenever the process is up.
    return this.kekIds;
  }

  #wrap(plaintext: Uint8Array, context: DataKeyContext): WrappedKey {
    return { kekId: this.activeKekId, ciphertext: aesGcmSeal(this.#active, plaintext, contextAad(context)) };
  }
}
