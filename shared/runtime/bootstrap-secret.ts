import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { bootstrapToken } from "../crypto/tokens.ts";
import type { Env } from "../domain/env.ts";
import { ConfigError } from "../domain/errors.ts";
import type { Logger } from "../observability/logger.ts";
import type { RuntimeConfig } from "./config.ts";
import type { Runtime } from "./container.ts";

export const BOOTSTRAP_SECRET_VARIABLE = "BOOTSTRAP_TOKEN_SECRET_ARN";
/** The operator replaces the secret before this runs out (README, Deploy). */
export const BOOTSTRAP_TOKEN_TTL_SECONDS = 90 * 24 * 3600;

/** One read per secret per process: every later cold-start step and warm invocation reuses it. */
const cache = new Map<string, Promise<string>>();

function fetchSecret(secretId: string, region: string, endpoint: string | undefined): Promise<string> {
  const client = new SecretsManagerClient({ region, ...(endpoint === undefined ? {} : { endpoint }) });
  return client
    .send(new GetSecretValueCommand({ SecretId: secretId }))
    .then((result) => {
      if (result.SecretString === undefined) {
        throw new ConfigError(
          BOOTSTRAP_SECRET_VARIABLE,
          `${BOOTSTRAP_SECRET_VARIABLE} names a secret with no string value`,
        );
      }
      return result.SecretString.trim();
    })
    .catch((error: unknown) => {
      if (error instanceof ConfigError) throw error;
      // The SDK error's name says what went wrong (AccessDenied, ResourceNotFound) without any value.
      const name = error instanceof Error ? error.name : "unknown error";
      throw new ConfigError(
        BOOTSTRAP_SECRET_VARIABLE,
        `${BOOTSTRAP_SECRET_VARIABLE} could not be read: ${name}`,
      );
    })
    .finally(() => client.destroy());
}

/** The secret's value, read at most once per process; a failed read is retried on the next call. */
export function readBootstrapSecret(secretId: string, region: string, endpoint?: string): Promise<string> {
  let pending = cache.get(secretId);
  if (pending === undefined) {
    pending = fetchSecret(secretId, region, endpoint);
    cache.set(secretId, pending);
    pending.catch(() => cache.delete(secretId));
  }
  return pending;
}

/**
 * In AWS there is no file to hand the first admin token to, so its secret half lives in Secrets Manager
 * (`BOOTSTRAP_TOKEN_SECRET_ARN`) and each cold start makes sure that token exists. Unset: nothing to do.
 * Unreadable or malformed: start-up fails naming the variable, as for a bad KEK.
 */
export async function ensureBootstrapToken(
  env: Env,
  config: RuntimeConfig,
  runtime: Pick<Runtime, "tokens">,
  logger: Logger,
): Promise<void> {
  const secretId = env[BOOTSTRAP_SECRET_VARIABLE]?.trim();
  if (!secretId) return;
  const minted = bootstrapToken(
    await readBootstrapSecret(secretId, config.region, env.SECRETS_MANAGER_ENDPOINT?.trim() || undefined),
  );
  if (minted === undefined) {
    throw new ConfigError(
      BOOTSTRAP_SECRET_VARIABLE,
      `the secret named by ${BOOTSTRAP_SECRET_VARIABLE} must hold exactly 64 lowercase hex characters`,
    );
  }
  const state = await runtime.tokens.ensureBootstrap(minted, BOOTSTRAP_TOKEN_TTL_SECONDS);
  if (state === "unusable") {
    logger.warn("the bootstrap admin token is revoked or expired; put a new value in its secret", {
      tokenId: minted.tokenId,
    });
  } else {
    logger.info(state === "issued" ? "bootstrap admin token issued" : "bootstrap admin token is active", {
      tokenId: minted.tokenId,
    });
  }
}
