import {
  DecryptCommand,
  DescribeKeyCommand,
  GenerateDataKeyCommand,
  IncorrectKeyException,
  InvalidCiphertextException,
  KMSClient,
  ReEncryptCommand,
} from "@aws-sdk/client-kms";
import { DecryptError, KekMismatchError, KeyringUnavailableError } from "../domain/errors.ts";
import {
  type DataKeyContext,
  encryptionContext,
  type GeneratedDataKey,
  type Keyring,
  type WrappedKey,
} from "./keyring.ts";

export interface KmsKeyringOptions {
  readonly client: KMSClient;
  /** Key id, ARN or alias of the KEK new data keys are generated under (`KMS_KEY_ID`). */
  readonly keyId: string;
  /** Earlier KEKs, for unwrapping only (`KMS_KEY_ID_PREVIOUS`). */
  readonly previousKeyIds?: readonly string[];
}

/**
 * Data keys from AWS KMS. Plaintext KEKs never leave KMS; every call carries the tenant's encryption
 * context, which the key policy can require and CloudTrail records.
 */
export class KmsKeyring implements Keyring {
  readonly kind = "kms";
  readonly activeKekId: string;
  readonly kekIds: readonly string[];
  readonly #client: KMSClient;
  /** Configured ids may be aliases; stored DEKs name the key ARN that KMS reported. Resolved once. */
  #resolvedArns: Promise<ReadonlySet<string>> | undefined;

  constructor(options: KmsKeyringOptions) {
    this.#client = options.client;
    this.activeKekId = options.keyId;
    this.kekIds = [options.keyId, ...(options.previousKeyIds ?? [])];
  }

  async generateDataKey(context: DataKeyContext): Promise<GeneratedDataKey> {
    const result = await this.#call("GenerateDataKey", () =>
      this.#client.send(
        new GenerateDataKeyCommand({
          KeyId: this.activeKekId,
          KeySpec: "AES_256",
          EncryptionContext: encryptionContext(context),
        }),
      ),
    );
    if (result.Plaintext === undefined || result.CiphertextBlob === undefined || result.KeyId === undefined) {
      throw new KeyringUnavailableError("KMS GenerateDataKey returned an incomplete response");
    }
    return {
      plaintext: result.Plaintext,
      wrapped: { kekId: result.KeyId, ciphertext: result.CiphertextBlob },
    };
  }

  async unwrap(wrapped: WrappedKey, context: DataKeyContext): Promise<Uint8Array> {
    await this.#assertConfigured(wrapped, context);
    const result = await this.#call(
      "Decrypt",
      () =>
        this.#client.send(
          new DecryptCommand({
            KeyId: wrapped.kekId,
            CiphertextBlob: wrapped.ciphertext,
            EncryptionContext: encryptionContext(context),
          }),
        ),
      context,
      wrapped,
    );
    if (result.Plaintext === undefined) {
      throw new KeyringUnavailableError("KMS Decrypt returned no plaintext");
    }
    return result.Plaintext;
  }

  async rewrap(wrapped: WrappedKey, context: DataKeyContext): Promise<WrappedKey> {
    await this.#assertConfigured(wrapped, context);
    const result = await this.#call(
      "ReEncrypt",
      () =>
        this.#client.send(
          new ReEncryptCommand({
            CiphertextBlob: wrapped.ciphertext,
            SourceKeyId: wrapped.kekId,
            SourceEncryptionContext: encryptionContext(context),
            DestinationKeyId: this.activeKekId,
            DestinationEncryptionContext: encryptionContext(context),
          }),
        ),
      context,
      wrapped,
    );
    if (result.CiphertextBlob === undefined || result.KeyId === undefined) {
      throw new KeyringUnavailableError("KMS ReEncrypt returned an incomplete response");
    }
    return { kekId: result.KeyId, ciphertext: result.CiphertextBlob };
  }

  async probe(): Promise<readonly string[]> {
    return [...(await this.#configuredArns())];
  }

  async #assertConfigured(wrapped: WrappedKey, context: DataKeyContext): Promise<void> {
    const arns = await this.#configuredArns();
    if (!arns.has(wrapped.kekId)) {
      throw new KekMismatchError(context.tenantId, context.dekVersion, wrapped.kekId, [...arns]);
    }
  }

  #configuredArns(): Promise<ReadonlySet<string>> {
    this.#resolvedArns ??= Promise.all(
      this.kekIds.map(async (keyId) => {
        const described = await this.#call("DescribeKey", () =>
          this.#client.send(new DescribeKeyCommand({ KeyId: keyId })),
        );
        const arn = described.KeyMetadata?.Arn;
        if (arn === undefined) throw new KeyringUnavailableError(`KMS could not describe key ${keyId}`);
        return arn;
      }),
    ).then((arns) => new Set(arns));
    // A failed lookup must not be cached, or one KMS blip would poison the keyring until restart.
    this.#resolvedArns.catch(() => {
      this.#resolvedArns = undefined;
    });
    return this.#resolvedArns;
  }

  /**
   * SDK errors become the keyring's typed errors; the message names the operation and the error (an
   * AccessDeniedException names which grant is missing) and never the request or the key material.
   */
  async #call<T>(
    operation: string,
    send: () => Promise<T>,
    context?: DataKeyContext,
    wrapped?: WrappedKey,
  ): Promise<T> {
    try {
      return await send();
    } catch (error) {
      if (context !== undefined && wrapped !== undefined) {
        if (error instanceof IncorrectKeyException) {
          const configured = await this.#configuredArns().catch(() => new Set(this.kekIds));
          throw new KekMismatchError(context.tenantId, context.dekVersion, wrapped.kekId, [...configured]);
        }
        if (error instanceof InvalidCiphertextException) {
          throw new DecryptError(
            `KMS rejected tenant ${context.tenantId}'s DEK v${context.dekVersion} as invalid ciphertext`,
            { cause: error },
          );
        }
      }
      const name = error instanceof Error ? error.name : "unknown error";
      throw new KeyringUnavailableError(`KMS ${operation} failed: ${name}`, { cause: error });
    }
  }
}

/**
 * The client's per-attempt timeout (connecting included): a hung request then fails as a TimeoutError,
 * which the SDK retries like any transient error; its default would wait 300 s on a hung connection.
 */
export function kmsRequestHandler(timeoutMs: number | undefined) {
  return timeoutMs === undefined
    ? {}
    : {
        requestHandler: {
          requestTimeout: timeoutMs,
          connectionTimeout: timeoutMs,
          throwOnRequestTimeout: true,
        },
      };
}

/** A KMS keyring on its own client, from the deployment's settings. */
export function createKmsKeyring(options: {
  readonly region: string;
  readonly keyId: string;
  readonly previousKeyIds: readonly string[];
  /** Only for pointing the SDK at a KMS-protocol test endpoint. */
  readonly endpoint?: string;
  readonly requestTimeoutMs?: number;
}): KmsKeyring {
  const client = new KMSClient({
    region: options.region,
    ...kmsRequestHandler(options.requestTimeoutMs),
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
  });
  return new KmsKeyring({ client, keyId: options.keyId, previousKeyIds: options.previousKeyIds });
}
