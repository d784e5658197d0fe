import type { Env } from "../domain/env.ts";
import { EmfMetrics } from "../observability/emf-metrics.ts";
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
  const metrics = new EmfMetrics(env.STRONGBOX_ENVIRONMENT);
  const config = readRuntimeConfig(env);
  let choice: ReturnType<typeof createKeyring>;
  try {
    choice = createKeyring(env, config);
  } catch (error) {
    // The alarm on KekConfigured == 0 needs a data point even from an instance that refuses to start.
    metrics.increment("KekConfigured", 0);
    throw error;
  }
  const { keyring, chainKeys } = choice;
  const table = createTable(
    {
      region: config.region,
      ...(config.dynamoEndpoint === undefined ? {} : { endpoint: config.dynamoEndpoint }),
    },
    config.tableName,
  );
  const runtime = createRuntime({ keyring, chainKeys, metrics, table, config });
  const reachable = await keyring.probe().then(
    () => true,
    () => false,
  );
  metrics.increment("KekConfigured", reachable ? 1 : 0);
  await ensureBootstrapToken(env, config, runtime, runtime.logger);
  return runtime;
}
