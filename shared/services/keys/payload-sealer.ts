import { openValue, sealValue } from "../../crypto/envelope.ts";
import type { Keyring } from "../../crypto/keyring.ts";
import type { PayloadSealer, SealedPayload } from "../../domain/wrapping.ts";

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Wrapped payloads, sealed at rest like any value: the envelope under a data key of their own, made
 * by the keyring for the payload's scope (the tenant, or `_system` for a token), and bound to the
 * wrapping id. No secret name holds a `:`, so `wrap:<id>` never opens as, or for, a stored value.
 * A data key per payload rather than the tenant's DEK: a token's payload belongs to no tenant, and a
 * handoff is rare enough that one KMS call to seal and one to open cost nothing.
 */
export class KeyringPayloadSealer implements PayloadSealer {
  readonly #keyring: Keyring;

  constructor(keyring: Keyring) {
    this.#keyring = keyring;
  }

  async seal(scope: string, wrapId: string, payload: string): Promise<SealedPayload> {
    const { plaintext, wrapped } = await this.#keyring.generateDataKey({ tenantId: scope, dekVersion: 0 });
    const envelope = sealValue(plaintext, 0, utf8Encoder.encode(payload), binding(scope, wrapId));
    return { envelope, kekId: wrapped.kekId, wrappedKey: wrapped.ciphertext };
  }

  async open(scope: string, wrapId: string, sealed: SealedPayload): Promise<string> {
    const key = await this.#keyring.unwrap(
      { kekId: sealed.kekId, ciphertext: sealed.wrappedKey },
      { tenantId: scope, dekVersion: 0 },
    );
    return utf8Decoder.decode(openValue(key, sealed.envelope, binding(scope, wrapId)));
  }
}

const binding = (scope: string, wrapId: string) => ({
  tenantId: scope,
  secretName: `wrap:${wrapId}`,
  version: 0,
});
