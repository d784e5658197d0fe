import type { Env } from "../domain/env.ts";
import { EmfMetrics } from "../observability/emf-metrics.ts";
import { createLogger } from "../observability/logger.ts";
import { EventBridgeRewrapDispatch, NoRewrapDispatch } from "../observability/rewrap-requests.ts";
import { createEventBridgeClient, createRotationEvents } from "../observability/rotation-events.ts";
import { createTable } from "../storage/table.ts";
import { createAnchorLog } from "./anchors.ts";
import { ensureBootstrapToken } from "./bootstrap-secret.ts";
import { readRuntimeConfig } from "./config.ts";
import { createKeyring, createRuntime, type Runtime } from "./container.ts";
import { checkStartUp } from "./start-up-check.ts";

export interface LambdaRuntimeOptions {
  /**
   * Run the start-up check (start-up-check.ts) and refuse to serve when it fails; on by default. The
   * audit function turns it off: it never uses the KEK, and CloudTrail's KMS events must keep being
   * recorded during a KEK incident, when they matter most.
   */
  readonly startUpCheck?: boolean;
  /** May Scan the table to backfill the tenant directory: the rotation function only. */
  readonly directoryBackfill?: boolean;
  /**
   * How this function meets the anchor log (`AUDIT_ANCHOR_BUCKET`): `append` for the audit sequencer,
   * `read` for the API's verify routes, none for the rest. Each role's S3 permissions match (infra/stacks/grants.ts).
   */
  readonly anchors?: "append" | "read";
}

/**
 * The runtime every Lambda function shares, built once per cold start from the function's environment.
 * A missing or malformed KEK throws here, during init, so a misconfigured function never serves; so do
 * a failed start-up check and an unreadable bootstrap token secret, where one is configured.
 */
export async function createLambdaRuntime(env: Env, options: LambdaRuntimeOptions = {}): Promise<Runtime> {
  const startUpCheck = options.startUpCheck ?? true;
  const metrics = new EmfMetrics(env.STRONGBOX_ENVIRONMENT);
  const config = readRuntimeConfig(env);
  let choice: ReturnType<typeof createKeyring>;
  try {
    choice = createKeyring(env, config);
  } catch (error) {
    if (startUpCheck) {
      // The alarm on KekConfigured == 0 needs a data point even from an instance that refuses to start.
      metrics.increment("KekConfigured", 0);
      await metrics.flush();
    }
    throw error;
  }
  const { keyring, chainKeys } = choice;
  const table = createTable(
    {
      region: config.region,
      requestTimeoutMs: config.awsRequestTimeoutMs,
      ...(config.dynamoEndpoint === undefined ? {} : { endpoint: config.dynamoEndpoint }),
    },
    config.tableName,
  );
  const logger = createLogger();
  const { eventBusName: busName, eventsEndpoint: endpoint } = config.rotation;
  const bus = { region: config.region, busName, endpoint, stage: config.stage };
  // One client for the rotation events and the re-wrap requests (readRuntimeConfig ensures a stage).
  const client = busName === undefined ? undefined : createEventBridgeClient(bus);
  const anchors = options.anchors === undefined ? undefined : createAnchorLog(config);
  const runtime = createRuntime({
    keyring,
    chainKeys,
    metrics,
    table,
    config,
    logger,
    events: createRotationEvents({ ...bus, logger, ...(client === undefined ? {} : { client }) }),
    rewrapDispatch:
      client === undefined || busName === undefined || config.stage === undefined
        ? new NoRewrapDispatch()
        : new EventBridgeRewrapDispatch(client, busName, config.stage),
    directoryBackfill: options.directoryBackfill ?? false,
    ...(anchors === undefined ? {} : { anchors, anchorsReadOnly: options.anchors === "read" }),
  });
  if (startUpCheck) {
    try {
      await checkStartUp(runtime, metrics);
    } finally {
      await metrics.flush();
    }
  }
  await ensureBootstrapToken(env, config, runtime, runtime.logger);
  return runtime;
}
