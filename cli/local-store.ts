import { existsSync } from "node:fs";
import { join } from "node:path";
import { DataKeyCache } from "../shared/crypto/data-key-cache.ts";
import type { Env } from "../shared/domain/env.ts";
import { CounterMetrics } from "../shared/observability/metrics.ts";
import { createAnchorLog } from "../shared/runtime/anchors.ts";
import { readRuntimeConfig } from "../shared/runtime/config.ts";
import {
  createKeyring,
  createRuntime,
  type KeyringChoice,
  type Runtime,
} from "../shared/runtime/container.ts";
import { DataKeys } from "../shared/services/keys/data-keys.ts";
import { KeyDiagnosis } from "../shared/services/keys/diagnosis.ts";
import { Sealer } from "../shared/services/keys/sealer.ts";
import { ANCHOR_FILE } from "../shared/storage/anchor-file.ts";
import { openTable } from "../shared/storage/local-dynamo.ts";
import { SecretRepository } from "../shared/storage/secret-repository.ts";
import { TenantRepository } from "../shared/storage/tenant-repository.ts";
import { ProblemFound } from "./errors.ts";

/** What the offline commands work on: the local server's `.data/`, or the table DYNAMODB_ENDPOINT names. */
export interface LocalStore {
  readonly runtime: Runtime;
  readonly diagnosis: KeyDiagnosis;
  close(): Promise<void>;
}

/**
 * The KEKs as the server would load them, except that a missing one is never generated: a doctor
 * that made a development KEK would hide the very problem it was asked about.
 */
export function keyringFor(env: Env, dataDir: string): KeyringChoice {
  const devKek = join(dataDir, "dev-kek");
  return createKeyring(env, readRuntimeConfig(env), existsSync(devKek) ? devKek : undefined);
}

export async function openLocalStore(env: Env, dataDir: string, keys: KeyringChoice): Promise<LocalStore> {
  const config = readRuntimeConfig(env);
  const localPath = join(dataDir, "dynamodb");
  if (config.dynamoEndpoint === undefined && !existsSync(localPath)) {
    throw new ProblemFound(
      `no store at ${localPath}`,
      "start the server once (npm start), or set DATA_DIR to the store's folder",
    );
  }
  let store: Awaited<ReturnType<typeof openTable>>;
  try {
    store = await openTable({
      region: config.region,
      tableName: config.tableName,
      endpoint: config.dynamoEndpoint,
      localPath,
      requestTimeoutMs: config.awsRequestTimeoutMs,
    });
  } catch {
    throw new ProblemFound(
      `cannot open ${localPath}: a running server holds it`,
      "stop the server, point DYNAMODB_ENDPOINT at a running store, or ask the server with --url",
    );
  }
  const { table } = store;
  // The anchors are what lets verify see a tail, or a whole chain, cut from the table. The bucket
  // (AUDIT_ANCHOR_BUCKET) is only read from here: its policy lets none but the audit role put.
  const anchors = createAnchorLog(config, join(dataDir, ANCHOR_FILE));
  const runtime = createRuntime({
    keyring: keys.keyring,
    chainKeys: keys.chainKeys,
    table,
    config,
    anchors,
    anchorsReadOnly: config.auditAnchors !== undefined,
  });
  const tenants = new TenantRepository(table);
  const dataKeys = new DataKeys(keys.keyring, tenants, new DataKeyCache(config.dataKeyCache));
  // Nothing here seals, so the snapshot freshness window is irrelevant: 0 keeps none.
  const sealer = new Sealer(dataKeys, new CounterMetrics(), 0);
  const diagnosis = new KeyDiagnosis(keys.keyring, tenants, new SecretRepository(table), sealer);
  return { runtime, diagnosis, close: () => store.close() };
}
