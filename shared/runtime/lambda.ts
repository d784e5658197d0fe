import type { Env } from "../crypto/kek-source.ts";
import { createTable } from "../storage/table.ts";
import { ensureBootstrapToken } from "./bootstrap-secret.ts";
import { readRuntimeConfig } from "./config.ts";
import { createKeyring, createRuntime, type Runtime } from "./container.ts";

/**
 * The runtime every Lambda function shares, built once per cold start from the function's environment.
 * A missing or malformed KEK throws here, during init, so a misconfigured function never serves; so does
 * an unreadable bootstrap token secret, where one is configured.
 */
export async function createLambdaRuntime(env: Env): Promise<Runtime> {
  const config = readRuntimeConfig(env);
  const { keyring } = createKeyring(env, config);
  const table = createTable(
    {
      region: config.region,
      ...(config.dynamoEndpoint === undefined ? {} : { endpoint: config.dynamoEndpoint }),
    },
    config.tableName,
  );
  const runtime = createRuntime({ keyring, table, config });
  await ensureBootstrapToken(env, config, runtime, runtime.logger);
  return runtime;
}
