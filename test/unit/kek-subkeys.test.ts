import { createHmac, hkdfSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { aesGcmOpen } from "../../shared/crypto/aead.ts";
import { encryptionContext } from "../../shared/crypto/keyring.ts";
import { kekFingerprint, LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { randomKek } from "../../testing/harness.ts";

/*
 * One local KEK, four purposes, four keys: each is HKDF-SHA256 over the KEK under its own label, and
 * none is the KEK. The expected keys are computed here from the documented salt and labels, not by
 * the code under test.
 */

const SALT = "strongbox/local-kek/v2";
const subkey = (kek: Uint8Array, label: string) =>
  Buffer.from(hkdfSync("sha256", kek, SALT, `strongbox/local-kek/${label}`, 32));
const context = { tenantId: "acme", dekVersion: 3 };
const aad = () =>
  new TextEncoder().encode(
    JSON.stringify(Object.entries(encryptionContext(context)).sort(([a], [b]) => a.localeCompare(b))),
  );

describe("local KEK key separation", () => {
  const kek = randomKek();
  const keyring = new LocalKeyring({ active: kek, previous: [] });

  it("a wrapped DEK opens under the wrapping subkey, not under the raw KEK", async () => {
    const { plaintext, wrapped } = await keyring.generateDataKey(context);
    expect(aesGcmOpen(kek, wrapped.ciphertext, aad())).toBeUndefined();
    const opened = aesGcmOpen(subkey(kek, "dek-wrap"), wrapped.ciphertext, aad());
    expect(opened && Buffer.from(opened).equals(Buffer.from(plaintext))).toBe(true);
    expect(Buffer.from(await keyring.unwrap(wrapped, context)).equals(Buffer.from(plaintext))).toBe(true);
  });

  it("the fingerprint comes from its own subkey, not from an HMAC under the raw KEK", () => {
    const legacy = `kek-${createHmac("sha256", kek).update("strongbox/kek-fingerprint/v1").digest("hex").slice(0, 16)}`;
    expect(kekFingerprint(kek)).not.toBe(legacy);
    expect(kekFingerprint(kek)).toBe(`kek-${subkey(kek, "fingerprint").toString("hex").slice(0, 16)}`);
    expect(keyring.activeKekId).toBe(kekFingerprint(kek));
  });

  it("the audit chain's day key and the item key come from their own subkeys", async () => {
    const chain = keyring.chainKeys();
    const day = await chain.current(new Date("2026-01-02T03:04:05Z"));
    const fromRaw = hkdfSync("sha256", kek, "strongbox/audit-chain/v1", day.ref, 32);
    expect(Buffer.from(day.key).equals(Buffer.from(fromRaw))).toBe(false);
    const fromSubkey = hkdfSync(
      "sha256",
      subkey(kek, "audit-chain"),
      "strongbox/audit-chain/v1",
      day.ref,
      32,
    );
    expect(Buffer.from(day.key).equals(Buffer.from(fromSubkey))).toBe(true);

    const item = await chain.itemKeys().current();
    const itemFromRaw = hkdfSync("sha256", kek, "strongbox/item-integrity/v1", item.ref, 32);
    expect(Buffer.from(item.key).equals(Buffer.from(itemFromRaw))).toBe(false);
    const itemFromSubkey = hkdfSync(
      "sha256",
      subkey(kek, "item-integrity"),
      "strongbox/item-integrity/v1",
      item.ref,
      32,
    );
    expect(Buffer.from(item.key).equals(Buffer.from(itemFromSubkey))).toBe(true);
    expect(Buffer.from(item.key).equals(Buffer.from(day.key))).toBe(false);
  });
});
