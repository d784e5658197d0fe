import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import { type EnvelopeBinding, openValue, sealValue } from "../../shared/crypto/envelope.ts";
import { DecryptError } from "../../shared/domain/errors.ts";

/*
 * The envelope's promise, over arbitrary input: what is sealed opens to the same bytes under the same
 * binding, and any change to the sealed bytes or to the binding refuses with a DecryptError, never a
 * different plaintext.
 */

const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
const dekVersion = fc.integer({ min: 0, max: 0xffffffff });
const plaintext = fc.uint8Array({ maxLength: 512 });
// NUL never occurs in tenant ids or secret names (the envelope relies on it as the field separator).
const field = fc.string({ minLength: 1, maxLength: 40, unit: "binary" }).filter((s) => !s.includes("\0"));
const binding: fc.Arbitrary<EnvelopeBinding> = fc.record({
  tenantId: field,
  secretName: field,
  version: fc.integer({ min: 1, max: 2 ** 31 }),
});

function refuses(open: () => Uint8Array): void {
  expect(open).toThrow(DecryptError);
}

describe("the envelope", () => {
  test.prop([key, dekVersion, plaintext, binding], { numRuns: 200 })(
    "opens to what was sealed, under the same binding",
    (dek, version, bytes, where) => {
      const sealed = sealValue(dek, version, bytes, where);
      expect(openValue(dek, sealed, where)).toEqual(bytes);
    },
  );

  test.prop([key, dekVersion, plaintext, binding, fc.nat(), fc.integer({ min: 0, max: 7 })], {
    numRuns: 300,
  })("refuses any single bit flipped anywhere in the sealed bytes", (dek, version, bytes, where, at, bit) => {
    const sealed = sealValue(dek, version, bytes, where);
    const tampered = new Uint8Array(sealed);
    const index = at % tampered.length;
    tampered[index] = (tampered[index] ?? 0) ^ (1 << bit);
    refuses(() => openValue(dek, tampered, where));
  });

  test.prop([key, dekVersion, plaintext, binding, binding], { numRuns: 200 })(
    "refuses under any other tenant, name or version",
    (dek, version, bytes, where, other) => {
      fc.pre(
        other.tenantId !== where.tenantId ||
          other.secretName !== where.secretName ||
          other.version !== where.version,
      );
      refuses(() => openValue(dek, sealValue(dek, version, bytes, where), other));
    },
  );

  const change = fc.oneof(
    fc.record({ tenantId: field }),
    fc.record({ secretName: field }),
    fc.record({ version: fc.integer({ min: 1, max: 2 ** 31 }) }),
  );
  test.prop([key, dekVersion, plaintext, binding, change], { numRuns: 200 })(
    "refuses when exactly one field of the binding changes",
    (dek, version, bytes, where, patch) => {
      const other = { ...where, ...patch };
      fc.pre(JSON.stringify(other) !== JSON.stringify(where));
      refuses(() => openValue(dek, sealValue(dek, version, bytes, where), other));
    },
  );

  test.prop([key, key, dekVersion, plaintext, binding], { numRuns: 100 })(
    "refuses under another DEK",
    (dek, otherDek, version, bytes, where) => {
      fc.pre(Buffer.compare(dek, otherDek) !== 0);
      refuses(() => openValue(otherDek, sealValue(dek, version, bytes, where), where));
    },
  );

  test.prop([key, dekVersion, plaintext, binding, fc.nat()], { numRuns: 200 })(
    "refuses the sealed bytes cut short or extended",
    (dek, version, bytes, where, n) => {
      const sealed = sealValue(dek, version, bytes, where);
      refuses(() => openValue(dek, sealed.subarray(0, n % sealed.length), where));
      refuses(() => openValue(dek, Buffer.concat([sealed, new Uint8Array([n & 0xff])]), where));
    },
  );
});
