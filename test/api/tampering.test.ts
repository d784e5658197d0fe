import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ENVELOPE_FORMAT_V1,
  type EnvelopeBinding,
  envelopeDekVersion,
  openValue,
  sealValue,
} from "../../shared/crypto/envelope.ts";
import { DecryptError } from "../../shared/domain/errors.ts";
import type { WrappedDataKey } from "../../shared/domain/types.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import {
  flipBit,
  flipEnvelopeBit,
  getRawItem,
  headKey,
  putRawItem,
  tenantKey,
  versionKey,
} from "../../testing/faults.ts";
import { type ApiResponse, type Harness, startHarness, startStore } from "../../testing/harness.ts";

/** Envelope layout: format(1) ‖ DEK version(4) ‖ IV(12) ‖ ciphertext ‖ tag(16). */
const FORMAT_BYTE = 0;
const DEK_VERSION_LOW_BYTE = 4;
const IV_START = 5;
const CIPHERTEXT_START = 17;

describe("envelope.ts sealValue / openValue", () => {
  const dek = new Uint8Array(randomBytes(32));
  const binding: EnvelopeBinding = { tenantId: "acme", secretName: "db-password", version: 3 };
  const plaintext = new TextEncoder().encode("hunter2");
  const sealed = sealValue(dek, 7, plaintext, binding);

  it("what was sealed opens to the same bytes under the same DEK and binding", () => {
    expect(Buffer.from(openValue(dek, sealed, binding))).toEqual(Buffer.from(plaintext));
    expect(sealed[FORMAT_BYTE]).toBe(ENVELOPE_FORMAT_V1);
    expect(envelopeDekVersion(sealed)).toBe(7);
  });

  it("an empty value round-trips too", () => {
    const empty = sealValue(dek, 1, new Uint8Array(0), binding);
    expect(openValue(dek, empty, binding)).toHaveLength(0);
  });

  it("sealing the same value twice gives different envelopes (fresh IV)", () => {
    expect(Buffer.from(sealValue(dek, 7, plaintext, binding))).not.toEqual(Buffer.from(sealed));
  });

  it.each([
    ["another tenant", { ...binding, tenantId: "globex" }],
    ["another secret name", { ...binding, secretName: "db-password2" }],
    ["another version", { ...binding, version: 4 }],
    // Without a separator these two would both read "acme" + "db-password"; NUL keeps them apart.
    ["tenant and name shifted into each other", { ...binding, tenantId: "acmedb", secretName: "-password" }],
  ])("an envelope opened for %s fails with DecryptError", (_label, other) => {
    expect(() => openValue(dek, sealed, other)).toThrow(DecryptError);
  });

  it("an envelope opened under another DEK fails with DecryptError", () => {
    expect(() => openValue(new Uint8Array(randomBytes(32)), sealed, binding)).toThrow(DecryptError);
  });

  it("a header naming another DEK version fails, because the header is authenticated", () => {
    const relabelled = new Uint8Array(sealed);
    new DataView(relabelled.buffer).setUint32(1, 8);
    expect(envelopeDekVersion(relabelled)).toBe(8);
    expect(() => openValue(dek, relabelled, binding)).toThrow(DecryptError);
  });

  it("every single-bit flip anywhere in the envelope fails with DecryptError", () => {
    let flips = 0;
    for (let byte = 0; byte < sealed.length; byte += 1) {
      for (let bit = 0; bit < 8; bit += 1) {
        expect(() => openValue(dek, flipBit(sealed, byte, bit), binding)).toThrow(DecryptError);
        flips += 1;
      }
    }
    expect(flips).toBe(sealed.length * 8);
  });

  it("every truncation of the envelope fails with DecryptError", () => {
    for (let length = 0; length < sealed.length; length += 1) {
      expect(() => openValue(dek, sealed.subarray(0, length), binding)).toThrow(DecryptError);
    }
  });

  it("an envelope with bytes appended fails with DecryptError", () => {
    const extended = Buffer.concat([sealed, Buffer.from([0])]);
    expect(() => openValue(dek, extended, binding)).toThrow(DecryptError);
  });

  it.each([0, 2, 255])(
    "an unknown format byte (%i) fails with DecryptError before any decryption",
    (format) => {
      const relabelled = new Uint8Array(sealed);
      relabelled[FORMAT_BYTE] = format;
      expect(() => envelopeDekVersion(relabelled)).toThrow(DecryptError);
      expect(() => openValue(dek, relabelled, binding)).toThrow(/unknown format/);
    },
  );
});

describe("tampering with stored data through the API", () => {
  let store: { dynamo: LocalDynamo; table: Table };
  let h: Harness;
  let admin: string;

  const read = (harness: Harness, tenantId: string, name: string, version?: number) =>
    harness.call(
      "GET",
      `/v1/tenants/${tenantId}/secrets/${name}${version === undefined ? "" : `?version=${version}`}`,
      { token: admin, headers: { "x-audit-reason": "tamper test" } },
    );

  /** Writes each value as the next version and returns the values in version order. */
  async function write(tenantId: string, name: string, ...values: string[]): Promise<string[]> {
    for (const value of values) {
      const put = await h.call("PUT", `/v1/tenants/${tenantId}/secrets/${name}`, {
        token: admin,
        body: { value },
      });
      expect(put.status).toBe(200);
    }
    return values;
  }

  const unique = (label: string) => `${label}-${randomBytes(8).toString("hex")}`;

  /** The refusal every tampering case must get: a typed 500 with no value, and nothing else. */
  async function expectDecryptFailed(response: ApiResponse, ...mustNotContain: string[]): Promise<void> {
    expect(response.status).toBe(500);
    const body = await response.json();
    expect(Object.keys(body)).toEqual(["error"]);
    expect(Object.keys(body.error).sort()).toEqual(["code", "message"]);
    expect(body.error.code).toBe("decrypt_failed");
    for (const value of mustNotContain) expect(response.text).not.toContain(value);
  }

  const decryptFailures = (harness: Harness = h) => harness.runtime.metrics.count("DecryptFailures");

  beforeAll(async () => {
    store = await startStore();
    h = await startHarness({ store });
    admin = await h.token("admin");
    for (const tenantId of ["acme", "globex", "initech"]) {
      const created = await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId } });
      expect(created.status).toBe(201);
    }
  });
  afterAll(() => store.dynamo.close());

  it.each([
    ["the IV", IV_START],
    ["the ciphertext", CIPHERTEXT_START],
    ["the tag", -1],
  ])(
    "a bit flipped in %s of a stored envelope gives 500 decrypt_failed, no value, one DecryptFailure",
    async (_label, at) => {
      const name = unique("flip");
      const [value] = await write("acme", name, unique("value"));
      const stored = await getRawItem(h.table, headKey("acme", name));
      await flipEnvelopeBit(h.table, headKey("acme", name), at < 0 ? stored.envelope.length + at : at);
      const before = decryptFailures();
      await expectDecryptFailed(await read(h, "acme", name), value as string);
      expect(decryptFailures()).toBe(before + 1);
    },
  );

  it("a bit flipped in the format byte gives 500 decrypt_failed and no value", async () => {
    const name = unique("format");
    const [value] = await write("acme", name, unique("value"));
    await flipEnvelopeBit(h.table, headKey("acme", name), FORMAT_BYTE, 1);
    await expectDecryptFailed(await read(h, "acme", name), value as string);
  });

  // README: "a flipped bit anywhere ... is counted in DecryptFailures". SecretService.open calls
  // envelopeDekVersion outside the try that counts, so a bad format byte is refused but not counted.
  it("a bit flipped in the format byte is counted in DecryptFailures", async () => {
    const name = unique("format");
    await write("acme", name, unique("value"));
    await flipEnvelopeBit(h.table, headKey("acme", name), FORMAT_BYTE, 1);
    const before = decryptFailures();
    expect((await read(h, "acme", name)).status).toBe(500);
    expect(decryptFailures()).toBe(before + 1);
  });

  // A flipped DEK-version bit names a DEK the tenant does not have. That is tampering, not a missing
  // secret: it must be refused as decrypt_failed (and counted), never answered 404 not_found.
  it("a bit flipped in the DEK version, naming a DEK the tenant lacks, gives 500 decrypt_failed", async () => {
    const name = unique("dekv");
    const [value] = await write("acme", name, unique("value"));
    await flipEnvelopeBit(h.table, headKey("acme", name), DEK_VERSION_LOW_BYTE, 1);
    const before = decryptFailures();
    await expectDecryptFailed(await read(h, "acme", name), value as string);
    expect(decryptFailures()).toBe(before + 1);
  });

  it("a DEK version changed to another DEK the tenant does have fails authentication", async () => {
    const name = unique("dek2");
    const [value] = await write("globex", name, unique("value"));
    // No rotation API exists yet, so DEK v2 is appended to the tenant item directly.
    const tenant = await getRawItem(h.table, tenantKey("globex"));
    const generated = await h.runtime.keyring.generateDataKey({ tenantId: "globex", dekVersion: 2 });
    const v2: WrappedDataKey = {
      version: 2,
      kekId: generated.wrapped.kekId,
      ciphertext: generated.wrapped.ciphertext,
      createdAt: new Date().toISOString(),
    };
    await putRawItem(h.table, { ...tenant, dataKeys: [...tenant.dataKeys, v2] });
    // 1 -> 2 is two bit flips in the low byte of the DEK version.
    await flipEnvelopeBit(h.table, headKey("globex", name), DEK_VERSION_LOW_BYTE, 0);
    await flipEnvelopeBit(h.table, headKey("globex", name), DEK_VERSION_LOW_BYTE, 1);
    const before = decryptFailures();
    await expectDecryptFailed(await read(h, "globex", name), value as string);
    expect(decryptFailures()).toBe(before + 1);
  });

  it("an envelope copied onto the same secret name and version of another tenant fails", async () => {
    const name = unique("shared");
    const [acmeValue] = await write("acme", name, unique("acme"));
    const [globexValue] = await write("globex", name, unique("globex"));
    const source = await getRawItem(h.table, headKey("acme", name));
    const target = await getRawItem(h.table, headKey("globex", name));
    expect(target.version).toBe(source.version);
    await putRawItem(h.table, { ...target, envelope: source.envelope });
    const before = decryptFailures();
    await expectDecryptFailed(await read(h, "globex", name), acmeValue as string, globexValue as string);
    expect(decryptFailures()).toBe(before + 1);
    expect((await read(h, "acme", name)).status).toBe(200);
  });

  it("an envelope copied onto another secret name of the same tenant and version fails", async () => {
    const from = unique("from");
    const onto = unique("onto");
    const [fromValue] = await write("acme", from, unique("from-value"));
    const [ontoValue] = await write("acme", onto, unique("onto-value"));
    const source = await getRawItem(h.table, headKey("acme", from));
    const target = await getRawItem(h.table, headKey("acme", onto));
    await putRawItem(h.table, { ...target, envelope: source.envelope });
    const before = decryptFailures();
    await expectDecryptFailed(await read(h, "acme", onto), fromValue as string, ontoValue as string);
    expect(decryptFailures()).toBe(before + 1);
  });

  it("an older version's envelope copied into the head of a newer version fails", async () => {
    const name = unique("rollback");
    const [v1, v2] = await write("acme", name, unique("v1"), unique("v2"));
    const archived = await getRawItem(h.table, versionKey("acme", name, 1));
    const head = await getRawItem(h.table, headKey("acme", name));
    expect(head.version).toBe(2);
    await putRawItem(h.table, { ...head, envelope: archived.envelope });
    const before = decryptFailures();
    await expectDecryptFailed(await read(h, "acme", name), v1 as string, v2 as string);
    expect(decryptFailures()).toBe(before + 1);
    // The untouched archive still opens: only the moved ciphertext is refused.
    expect(await (await read(h, "acme", name, 1)).json()).toMatchObject({ version: 1, value: v1 });
  });

  it("a newer version's envelope copied into an archived older version fails", async () => {
    const name = unique("forward");
    const [v1, v2] = await write("acme", name, unique("v1"), unique("v2"));
    const head = await getRawItem(h.table, headKey("acme", name));
    const archived = await getRawItem(h.table, versionKey("acme", name, 1));
    await putRawItem(h.table, { ...archived, envelope: head.envelope });
    await expectDecryptFailed(await read(h, "acme", name, 1), v1 as string, v2 as string);
    expect(await (await read(h, "acme", name)).json()).toMatchObject({ version: 2, value: v2 });
  });

  it("a tampered wrapped DEK in the tenant item fails on the next unwrap with 500 decrypt_failed", async () => {
    const name = unique("dek");
    const [value] = await write("initech", name, unique("value"));
    const tenant = await getRawItem(h.table, tenantKey("initech"));
    const [dek] = tenant.dataKeys as WrappedDataKey[];
    if (dek === undefined) throw new Error("tenant has no DEK");
    const tampered = { ...dek, ciphertext: flipBit(dek.ciphertext, dek.ciphertext.length - 1) };
    await putRawItem(h.table, { ...tenant, dataKeys: [tampered] });
    // The warm instance still holds the DEK it unwrapped for the write; a fresh instance on the same
    // table (like a new Lambda) has to unwrap the stored, tampered one.
    const cold = await startHarness({ store, keyring: h.runtime.keyring });
    await expectDecryptFailed(await read(cold, "initech", name), value as string);
    expect(decryptFailures(cold)).toBe(1);
    const write2 = await cold.call("PUT", `/v1/tenants/initech/secrets/${name}`, {
      token: admin,
      body: { value: "after tamper" },
    });
    expect(write2.status).toBe(500);
    expect((await write2.json()).error.code).toBe("decrypt_failed");
  });

  it("a failed decrypt is on the audit trail as a failure with its code", async () => {
    const name = unique("audited");
    await write("acme", name, unique("value"));
    await flipEnvelopeBit(h.table, headKey("acme", name), CIPHERTEXT_START);
    const response = await read(h, "acme", name);
    expect(response.status).toBe(500);
    const audit = await (await h.call("GET", "/v1/tenants/acme/audit?limit=20", { token: admin })).json();
    expect(audit.events).toContainEqual(
      expect.objectContaining({
        action: "secret.read",
        secretName: name,
        outcome: "failure",
        detail: "decrypt_failed",
        requestId: response.headers.get("x-request-id"),
      }),
    );
  });
});
