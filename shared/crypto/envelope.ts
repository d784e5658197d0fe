import { DecryptError } from "../domain/errors.ts";
import { aesGcmOpen, aesGcmSeal } from "./aead.ts";

/**
 * A sealed secret value, as storage sees it:
 *
 *   byte 0      format version (1)
 *   bytes 1-4   DEK version that sealed it, big-endian
 *   bytes 5-    AES-256-GCM iv || ciphertext || tag
 *
 * The header is authenticated too: the associated data is the header followed by the binding, so the
 * ciphertext opens only for the tenant, secret name and version it was sealed for, under that DEK.
 */
export const ENVELOPE_FORMAT_V1 = 1;
const HEADER_BYTES = 5;

export interface EnvelopeBinding {
  readonly tenantId: string;
  readonly secretName: string;
  readonly version: number;
}

function header(dekVersion: number): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES);
  bytes[0] = ENVELOPE_FORMAT_V1;
  new DataView(bytes.buffer).setUint32(1, dekVersion);
  return bytes;
}

function associatedData(headerBytes: Uint8Array, binding: EnvelopeBinding): Uint8Array {
  // NUL cannot occur in tenant ids or secret names, so the fields cannot be shifted into each other.
  const fields = new TextEncoder().encode(
    `strongbox/secret\0${binding.tenantId}\0${binding.secretName}\0${binding.version}`,
  );
  return Buffer.concat([headerBytes, fields]);
}

/** Reads which DEK version sealed an envelope, without opening it. */
export function envelopeDekVersion(envelope: Uint8Array): number {
  if (envelope.byteLength < HEADER_BYTES || envelope[0] !== ENVELOPE_FORMAT_V1) {
    throw new DecryptError("stored ciphertext has an unknown format");
  }
  return new DataView(envelope.buffer, envelope.byteOffset, envelope.byteLength).getUint32(1);
}

export function sealValue(
  dek: Uint8Array,
  dekVersion: number,
  plaintext: Uint8Array,
  binding: EnvelopeBinding,
): Uint8Array {
  const headerBytes = header(dekVersion);
  return Buffer.concat([headerBytes, aesGcmSeal(dek, plaintext, associatedData(headerBytes, binding))]);
}

export function openValue(dek: Uint8Array, envelope: Uint8Array, binding: EnvelopeBinding): Uint8Array {
  envelopeDekVersion(envelope);
  const headerBytes = envelope.subarray(0, HEADER_BYTES);
  const plaintext = aesGcmOpen(dek, envelope.subarray(HEADER_BYTES), associatedData(headerBytes, binding));
  if (plaintext === undefined) {
    throw new DecryptError(
      `secret ${binding.secretName} v${binding.version} of tenant ${binding.tenantId} failed authentication`,
    );
  }
  return plaintext;
}
