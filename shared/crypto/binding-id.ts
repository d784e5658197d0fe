import { createHash } from "node:crypto";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/**
 * A binding's id: 130 bits of SHA-256 over the principal's key (shared/domain/principal-arn.ts), in
 * base32. Derived rather than random, so a caller's binding is found by one GetItem and a principal
 * can hold one binding only.
 */
export function bindingIdFor(principalKey: string): string {
  const digest = createHash("sha256").update(`strongbox/binding-id/v1\0${principalKey}`).digest();
  let id = "";
  for (let bit = 0; id.length < 26; bit += 5) {
    const byte = bit >> 3;
    const word = ((digest[byte] ?? 0) << 8) | (digest[byte + 1] ?? 0);
    id += BASE32[(word >> (11 - (bit & 7))) & 31];
  }
  return id;
}
