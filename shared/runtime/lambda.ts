import type { Env } from "../crypto/kek-source.ts";
import { createTable } from "../storage/table.ts";
import { readRuntimeConfig } from "./config.ts";
import { createKeyring, createRuntime, type Runtime } from "./container.ts";

/**
 * The runtime every Lambda function shares, built once per cold start from the function's environment.
 * A missing or malformed KEK throws here, during init, so a misconfigured function never serves.
 */
export async function createLambdaRuntime(env: Env): Promise<Runtime> {
  const config = readRuntimeConfig(env);
  const { keyring, chainKeys } = createKeyring(env, config);
  const table = createTable(
    {
      region: config.region,
      ...(config.dynamoEndpoint === undefined ? {} : { endpoint: config.dynamoEndpoint }),
    },
    config.tableName,
  );
  return createRuntime({ keyring, chainKeys, table, config });
}
