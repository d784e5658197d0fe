import { type ChainKeys, createKmsChainKeys } from "../crypto/chain-keys.ts";
import { DataKeyCache } from "../crypto/data-key-cache.ts";
import { ACTIVE_KEK_VARIABLES, type Env, loadLocalKek } from "../crypto/kek-source.ts";
import type { Keyring } from "../crypto/keyring.ts";
import { createKmsKeyring } from "../crypto/kms-keyring.ts";
import { LocalKeyring } from "../crypto/local-keyring.ts";
import { ConfigError } from "../domain/errors.ts";
import { createLogger, type Logger } from "../observability/logger.ts";
import { CounterMetrics } from "../observability/metrics.ts";
import { createRotationEvents, type RotationEvents } from "../observability/rotation-events.ts";
import { AuditChain } from "../services/audit-chain.ts";
import { AuditService } from "../services/audit-service.ts";
import { DataKeys } from "../services/data-keys.ts";
import { HealthService } from "../services/health-service.ts";
import { KmsEventIngester } from "../services/kms-event-ingester.ts";
import { RotationRunner } from "../services/rotation-runner.ts";
import { RotationService } from "../services/rotation-service.ts";
import { Sealer } from "../services/sealer.ts";
import { SecretRotationService } from "../services/secret-rotation-service.ts";
import { SecretService } from "../services/secret-service.ts";
import { TenantService } from "../services/tenant-service.ts";
import { TokenService } from "../services/token-service.ts";
import { AuditRepository } from "../storage/audit-repository.ts";
import { CheckpointRepository } from "../storage/checkpoint-repository.ts";
import { SecretRepository } from "../storage/secret-repository.ts";
import type { Table } from "../storage/table.ts";
import { TenantRepository } from "../storage/tenant-repository.ts";
import { TokenRepository } from "../storage/token-repository.ts";
import type { RuntimeConfig } from "./config.ts";

export interface Runtime {
  readonly keyring: Keyring;
  readonly logger: Logger;
  readonly metrics: CounterMetrics;
  readonly tenants: TenantService;
  readonly secrets: SecretService;
  readonly tokens: TokenService;
  readonly audit: AuditService;
  /** The audit chains themselves, for operators' tools that verify without a request (audit:verify). */
  readonly auditChain: AuditChain;
  readonly health: HealthService;
  /** CloudTrail KMS events into the audit trail (functions/audit). */
  readonly kmsEvents: KmsEventIngester;
  readonly rotation: RotationService;
  readonly secretRotation: SecretRotationService;
  readonly rotationRunner: RotationRunner;
  readonly config: RuntimeConfig;
}

export interface KeyringChoice {
  readonly keyring: Keyring;
  /** What authenticates the audit chain: derived from the local KEK, or the KMS HMAC key. */
  readonly chainKeys: ChainKeys;
  /** True when a generated development KEK is in use; the caller warns on every start. */
  readonly devMode: boolean;
}

/**
 * KMS when `KMS_KEY_ID` is set, otherwise the local KEK. Setting both is refused rather than guessed
 * at, since the wrong choice would wrap new DEKs under a key the other deployments do not hold.
 */
export function createKeyring(env: Env, config: RuntimeConfig, devKekPath?: string): KeyringChoice {
  if (config.kms !== undefined) {
    const localSet = ACTIVE_KEK_VARIABLES.find((name) => env[name] || env[`${name}_FILE`]);
    if (localSet !== undefined) {
      throw new ConfigError(localSet, `both KMS_KEY_ID and ${localSet} are set; configure one KEK keeper`);
    }
    if (config.auditMacKeyId === undefined) {
      throw new ConfigError(
        "AUDIT_MAC_KEY_ID",
        "AUDIT_MAC_KEY_ID is not set: with KMS_KEY_ID the audit chain needs a KMS HMAC key (HMAC_256) to authenticate it",
      );
    }
    return {
      keyring: createKmsKeyring({ region: config.region, ...config.kms }),
      chainKeys: createKmsChainKeys({
        region: config.region,
        keyId: config.auditMacKeyId,
        ...(config.kms.endpoint === undefined ? {} : { endpoint: config.kms.endpoint }),
      }),
      devMode: false,
    };
  }
  const material = loadLocalKek(env, devKekPath === undefined ? {} : { devKekPath });
  const keyring = new LocalKeyring(material);
  return { keyring, chainKeys: keyring.chainKeys(), devMode: material.devMode };
}

/** Local KEKs derive the chain keys themselves; a KMS keyring needs the HMAC key named explicitly. */
function defaultChainKeys(keyring: Keyring): ChainKeys {
  if (keyring instanceof LocalKeyring) return keyring.chainKeys();
  throw new ConfigError("AUDIT_MAC_KEY_ID", "a KMS keyring needs AUDIT_MAC_KEY_ID for the audit chain");
}

export function createRuntime(options: {
  readonly keyring: Keyring;
  readonly chainKeys?: ChainKeys;
  /** Where counts go; on Lambda the EMF recorder, which also keeps the process's own counts. */
  readonly metrics?: CounterMetrics;
  readonly table: Table;
  readonly config: RuntimeConfig;
  readonly logger?: Logger;
  /** Where rotation events go; by default EventBridge when a bus is configured, else the log. */
  readonly events?: RotationEvents;
}): Runtime {
  const logger = options.logger ?? createLogger();
  const metrics = options.metrics ?? new CounterMetrics();
  const tenantRepository = new TenantRepository(options.table);
  const auditRepository = new AuditRepository(options.table);
  const chain = new AuditChain(
    auditRepository,
    options.chainKeys ?? defaultChainKeys(options.keyring),
    logger,
  );
  const audit = new AuditService(auditRepository, chain, metrics, logger, options.config.auditDenialWindowMs);
  const dataKeys = new DataKeys(
    options.keyring,
    tenantRepository,
    new DataKeyCache(options.config.dataKeyCache),
  );
  const tokens = new TokenService(new TokenRepository(options.table), audit);
  const secretRepository = new SecretRepository(options.table);
  const checkpoints = new CheckpointRepository(options.table);
  const { rotation: rotationConfig } = options.config;
  const sealer = new Sealer(dataKeys, metrics, rotationConfig.retireGraceMs / 2);
  const rotation = new RotationService(
    options.keyring,
    tenantRepository,
    secretRepository,
    checkpoints,
    dataKeys,
    sealer,
    audit,
    logger,
    rotationConfig,
  );
  const secretRotation = new SecretRotationService(secretRepository, sealer, audit);
  const events =
    options.events ??
    createRotationEvents({
      logger,
      region: options.config.region,
      busName: rotationConfig.eventBusName,
      endpoint: rotationConfig.eventsEndpoint,
    });
  return {
    keyring: options.keyring,
    logger,
    metrics,
    audit,
    auditChain: chain,
    tokens,
    tenants: new TenantService(tenantRepository, dataKeys, audit),
    secrets: new SecretService(secretRepository, sealer, tokens, audit),
    health: new HealthService(options.keyring, tenantRepository, chain),
    kmsEvents: new KmsEventIngester(audit, tenantRepository, metrics, options.config.kmsIngestion),
    rotation,
    secretRotation,
    rotationRunner: new RotationRunner(
      rotation,
      secretRotation,
      secretRepository,
      tenantRepository,
      checkpoints,
      events,
      audit,
      metrics,
      logger,
    ),
    config: options.config,
  };
}
