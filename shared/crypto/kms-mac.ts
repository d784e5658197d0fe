import { GenerateMacCommand, type GenerateMacCommandOutput, type KMSClient } from "@aws-sdk/client-kms";
import { KeyringUnavailableError } from "../domain/errors.ts";

/**
 * KMS `GenerateMac` (HMAC_SHA_256) over a fixed message: how the audit chain's day keys and the item
 * integrity key are drawn from the KMS HMAC key. HMAC is deterministic, so every instance (and every
 * verifier) derives the same key from the same message. `arn` is the key ARN KMS reports, also for an alias.
 */
export async function kmsGenerateMac(
  client: KMSClient,
  keyId: string,
  message: string,
  purpose: string,
): Promise<{ arn: string; mac: Uint8Array }> {
  let result: GenerateMacCommandOutput;
  try {
    result = await client.send(
      new GenerateMacCommand({
        KeyId: keyId,
        MacAlgorithm: "HMAC_SHA_256",
        Message: new TextEncoder().encode(message),
      }),
    );
  } catch (error) {
    const name = error instanceof Error ? error.name : "unknown error";
    throw new KeyringUnavailableError(`KMS GenerateMac for the ${purpose} failed: ${name}`, { cause: error });
  }
  if (result.Mac === undefined || result.KeyId === undefined) {
    throw new KeyringUnavailableError("KMS GenerateMac returned an incomplete response");
  }
  return { arn: result.KeyId, mac: result.Mac };
}
