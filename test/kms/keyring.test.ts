import {
  DecryptCommand,
  InvalidCiphertextException,
  KMSClient,
  KMSInternalException,
  NotFoundException,
} from "@aws-sdk/client-kms";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KmsKeyring } from "../../shared/crypto/kms-keyring.ts";
import { DecryptError, KekMismatchError, KeyringUnavailableError } from "../../shared/domain/errors.ts";
import { initialKeyId, type KmsEndpoint, startKmsEndpoint } from "../../testing/kms-endpoint.ts";

// The SDK would otherwise probe the EC2 metadata service when resolving defaults.
process.env.AWS_EC2_METADATA_DISABLED = "true";

const ALIAS = "alias/strongbox";
const tenantA = { tenantId: "tenant-a", dekVersion: 1 };
const tenantB = { tenantId: "tenant-b", dekVersion: 1 };

let kms: KmsEndpoint;
let client: KMSClient;

beforeEach(async () => {
  kms = await startKmsEndpoint({ keys: 1, aliases: { [ALIAS]: initialKeyId(1) } });
  client = new KMSClient({
    endpoint: kms.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts: 1,
  });
});

afterEach(async () => {
  client.destroy();
  await kms.close();
});

const calls = (operation: string): number => kms.calls[operation] ?? 0;

function keyring(keyId: string, previousKeyIds: readonly string[] = []): KmsKeyring {
  return new KmsKeyring({ client, keyId, previousKeyIds });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the promise to reject");
}

describe("KmsKeyring over the KMS JSON protocol", () => {
  it("generateDataKey sends the tenant encryption context", async () => {
    const generated = await keyring(ALIAS).generateDataKey(tenantA);

    expect(generated.plaintext).toHaveLength(32);
    // Stored DEKs must name the key ARN, not the alias, which can later be repointed.
    expect(generated.wrapped.kekId).toBe(kms.keyArn(ALIAS));
    // KMS only opens the blob with the exact context it was sealed under, so this proves what was sent.
    const decrypted = await client.send(
      new DecryptCommand({
        CiphertextBlob: generated.wrapped.ciphertext,
        EncryptionContext: { "strongbox:tenant": "tenant-a", "strongbox:dek-version": "1" },
      }),
    );
    expect(decrypted.Plaintext).toEqual(generated.plaintext);
    await expect(
      client.send(new DecryptCommand({ CiphertextBlob: generated.wrapped.ciphertext })),
    ).rejects.toBeInstanceOf(InvalidCiphertextException);
  });

  it("unwrap returns the generated plaintext", async () => {
    const ring = keyring(ALIAS);
    const generated = await ring.generateDataKey(tenantA);

    const plaintext = await ring.unwrap(generated.wrapped, tenantA);

    expect(Buffer.from(plaintext).equals(Buffer.from(generated.plaintext))).toBe(true);
    expect(calls("Decrypt")).toBe(1);
  });

  it("unwrap with another tenant's context fails with DecryptError", async () => {
    const ring = keyring(ALIAS);
    const generated = await ring.generateDataKey(tenantA);

    const error = await rejection(ring.unwrap(generated.wrapped, tenantB));

    expect(error).toBeInstanceOf(DecryptError);
    expect((error as DecryptError).message).toBe(
      "KMS rejected tenant tenant-b's DEK v1 as invalid ciphertext",
    );
    expect((error as DecryptError).cause).toBeInstanceOf(InvalidCiphertextException);
  });

  it("unwrap with another DEK version's context fails with DecryptError", async () => {
    const ring = keyring(ALIAS);
    const generated = await ring.generateDataKey(tenantA);

    await expect(ring.unwrap(generated.wrapped, { ...tenantA, dekVersion: 2 })).rejects.toBeInstanceOf(
      DecryptError,
    );
  });

  it("a tampered wrapped key fails with DecryptError", async () => {
    const ring = keyring(ALIAS);
    const generated = await ring.generateDataKey(tenantA);
    const ciphertext = Uint8Array.from(generated.wrapped.ciphertext);
    ciphertext[ciphertext.length - 1] = (ciphertext.at(-1) ?? 0) ^ 0x01;

    await expect(ring.unwrap({ ...generated.wrapped, ciphertext }, tenantA)).rejects.toBeInstanceOf(
      DecryptError,
    );
  });

  it("a DEK wrapped by an unconfigured key fails with KekMismatchError naming both keys", async () => {
    const arnA = kms.keyArn(ALIAS);
    const arnB = kms.createKey();
    const generated = await keyring(ALIAS).generateDataKey(tenantA);

    const error = await rejection(keyring(arnB).unwrap(generated.wrapped, tenantA));

    expect(error).toBeInstanceOf(KekMismatchError);
    expect((error as KekMismatchError).message).toBe(
      `tenant tenant-a's DEK v1 was wrapped by KEK ${arnA}; configured KEKs: ${arnB}`,
    );
    // Refused before asking KMS to decrypt with a key the operator never configured.
    expect(calls("Decrypt")).toBe(0);
  });

  it("a wrapped key whose recorded KEK is not the one that sealed it fails with KekMismatchError", async () => {
    const arnB = kms.createKey();
    const generated = await keyring(ALIAS).generateDataKey(tenantA);

    const error = await rejection(
      keyring(arnB, [ALIAS]).unwrap({ ...generated.wrapped, kekId: arnB }, tenantA),
    );

    // Here KMS itself answers IncorrectKeyException, because Decrypt names the recorded key.
    expect(error).toBeInstanceOf(KekMismatchError);
    expect((error as KekMismatchError).wrappedBy).toBe(arnB);
    expect(calls("Decrypt")).toBe(1);
  });

  it("previous key ids still unwrap", async () => {
    const generated = await keyring(ALIAS).generateDataKey(tenantA);
    const rotated = keyring(kms.createKey(), [ALIAS]);

    const plaintext = await rotated.unwrap(generated.wrapped, tenantA);

    expect(Buffer.from(plaintext).equals(Buffer.from(generated.plaintext))).toBe(true);
  });

  it("rewrap uses ReEncrypt and never Decrypt/GenerateDataKey", async () => {
    const generated = await keyring(ALIAS).generateDataKey(tenantA);
    const arnB = kms.createKey();
    const rotated = keyring(arnB, [ALIAS]);
    kms.resetCalls();

    const rewrapped = await rotated.rewrap(generated.wrapped, tenantA);

    expect(calls("ReEncrypt")).toBe(1);
    expect(calls("Decrypt")).toBe(0);
    expect(calls("GenerateDataKey")).toBe(0);
    expect(rewrapped.kekId).toBe(arnB);
    // The re-wrapped key opens under the new KEK alone, and to the same data key.
    const plaintext = await keyring(arnB).unwrap(rewrapped, tenantA);
    expect(Buffer.from(plaintext).equals(Buffer.from(generated.plaintext))).toBe(true);
  });

  it("rewrap with another tenant's context fails with DecryptError", async () => {
    const generated = await keyring(ALIAS).generateDataKey(tenantA);
    const rotated = keyring(kms.createKey(), [ALIAS]);

    await expect(rotated.rewrap(generated.wrapped, tenantB)).rejects.toBeInstanceOf(DecryptError);
  });

  it("KMS failure surfaces as KeyringUnavailableError and names no key material", async () => {
    const ring = keyring(ALIAS);
    const generated = await ring.generateDataKey(tenantA);
    const material = [generated.plaintext, generated.wrapped.ciphertext].flatMap((bytes) => [
      Buffer.from(bytes).toString("base64"),
      Buffer.from(bytes).toString("hex"),
    ]);
    kms.failNext("Decrypt");

    const error = await rejection(ring.unwrap(generated.wrapped, tenantA));

    expect(error).toBeInstanceOf(KeyringUnavailableError);
    expect((error as KeyringUnavailableError).message).toBe("KMS Decrypt failed: KMSInternalException");
    expect((error as KeyringUnavailableError).cause).toBeInstanceOf(KMSInternalException);
    const rendered = `${String(error)} ${(error as Error).stack ?? ""}`;
    for (const secret of material) expect(rendered).not.toContain(secret);
  });

  it("a throttled generateDataKey surfaces as KeyringUnavailableError", async () => {
    kms.failNext("*", "ThrottlingException");

    const error = await rejection(keyring(ALIAS).generateDataKey(tenantA));

    expect(error).toBeInstanceOf(KeyringUnavailableError);
    expect((error as KeyringUnavailableError).message).toBe(
      "KMS GenerateDataKey failed: ThrottlingException",
    );
  });

  it("probe resolves aliases via DescribeKey once", async () => {
    const ring = keyring(ALIAS, [kms.createKey()]);

    await ring.probe();
    expect(calls("DescribeKey")).toBe(2);

    const generated = await ring.generateDataKey(tenantA);
    await ring.unwrap(generated.wrapped, tenantA);
    await ring.unwrap(generated.wrapped, tenantA);
    await ring.rewrap(generated.wrapped, tenantA);
    expect(calls("DescribeKey")).toBe(2);
  });

  it("probe of an alias KMS does not know fails with KeyringUnavailableError", async () => {
    const error = await rejection(keyring("alias/missing").probe());

    expect(error).toBeInstanceOf(KeyringUnavailableError);
    expect((error as KeyringUnavailableError).cause).toBeInstanceOf(NotFoundException);
  });

  it("a failed DescribeKey is not cached", async () => {
    const ring = keyring(ALIAS);
    const generated = await ring.generateDataKey(tenantA);
    kms.failNext("DescribeKey");

    await expect(ring.probe()).rejects.toBeInstanceOf(KeyringUnavailableError);
    const plaintext = await ring.unwrap(generated.wrapped, tenantA);

    expect(Buffer.from(plaintext).equals(Buffer.from(generated.plaintext))).toBe(true);
    expect(calls("DescribeKey")).toBe(2);
  });
});
