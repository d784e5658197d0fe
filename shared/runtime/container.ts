import { type ChainKeys, createKmsChainKeys } from "../crypto/chain-keys.ts";
import { DataKeyCache } from "../crypto/data-key-cache.ts";
import { ItemMacs } from "../crypto/item-integrity.ts";
import { ACTIVE_KEK_VARIABLES, loadLocalKek } from "../crypto/kek-source.ts";
import type { Keyring } from "../crypto/keyring.ts";
import { createKmsKeyring } from "../crypto/kms-keyring.ts";
import { LocalKeyring } from "../crypto/local-keyring.ts";
import type { AnchorLog } from "../domain/audit-chain.ts";
import type { BreakGlassEvents } from "../domain/break-glass.ts";
import type { Env } from "../domain/env.ts";
import { ConfigError } from "../domain/errors.ts";
import type { ReferenceResolver } from "../domain/references.ts";
import type { RewrapDispatch } from "../domain/rotation.ts";
import type { RotationVerifier } from "../domain/verification.ts";
import { EventBridgeBreakGlassEvents, LogBreakGlassEvents } from "../observability/break-glass-events.ts";
import { createLogger, type Logger } from "../observability/logger.ts";
import { CounterMetrics } from "../observability/metrics.ts";
import {
  createEventBridgeClient,
  createRotationEvents,
  type RotationEvents,
} from "../observability/rotation-events.ts";
import { SecretsManagerResolver } from "../references/secrets-manager-resolver.ts";
import { BindingService } from "../services/access/binding-service.ts";
import { BreakGlass } from "../services/access/break-glass.ts";
import { CallerAuthentication } from "../services/access/caller-authentication.ts";
import { OperationGate } from "../services/access/operation-gate.ts";
import { ResponseWrapping } from "../services/access/response-wrapping.ts";
import { SealControl } from "../services/access/seal-control.ts";
import { SealGuard } from "../services/access/seal-guard.ts";
import { TokenService } from "../services/access/token-service.ts";
import { AuditLog, type PendingWitness } from "../services/audit/audit-log.ts";
import { AuditQueries } from "../services/audit/audit-queries.ts";
import { ChainReanchor } from "../services/audit/chain-reanchor.ts";
import { ChainVerifier } from "../services/audit/chain-verifier.ts";
import { ChainWriter } from "../services/audit/chain-writer.ts";
import { DenialWindows } from "../services/audit/denial-windows.ts";
import { KmsEventIngester } from "../services/audit/kms-event-ingester.ts";
import { Sequencer } from "../services/audit/sequencer.ts";
import { DataKeys } from "../services/keys/data-keys.ts";
import { DekRotation } from "../services/keys/dek-rotation.ts";
import { DekSweep } from "../services/keys/dek-sweep.ts";
import { ItemRekey } from "../services/keys/item-rekey.ts";
import { KekReporter } from "../services/keys/kek-report.ts";
import { KekRewrap } from "../services/keys/kek-rewrap.ts";
import { KeyringPayloadSealer } from "../services/keys/payload-sealer.ts";
import { RewrapRequests } from "../services/keys/rewrap-request.ts";
import { Sealer } from "../services/keys/sealer.ts";
import { BackgroundRewrap } from "../services/ops/background-rewrap.ts";
import { DueScan } from "../services/ops/due-scan.ts";
import { HealthService } from "../services/ops/health.ts";
import { ScheduledWork } from "../services/ops/scheduled-work.ts";
import { HeadWriter } from "../services/secrets/head-writer.ts";
import { RotationPolicies } from "../services/secrets/rotation-policy.ts";
import { SecretService } from "../services/secrets/secret-service.ts";
import { ValueRotation } from "../services/secrets/value-rotation.ts";
import { VersionLifecycle } from "../services/secrets/version-lifecycle.ts";
import { TenantDeletion } from "../services/tenants/tenant-deletion.ts";
import { TenantService } from "../services/tenants/tenant-service.ts";
import { AuditRepository } from "../storage/audit-repository.ts";
import { BindingRepository } from "../storage/binding-repository.ts";
import { BreakGlassRepository } from "../storage/break-glass-repository.ts";
import { CheckpointRepository } from "../storage/checkpoint-repository.ts";
import { DeletionRepository } from "../storage/deletion-repository.ts";
import { DirectoryBackfill } from "../storage/directory-backfill.ts";
import { SealRepository } from "../storage/seal-repository.ts";
import { SecretRepository } from "../storage/secret-repository.ts";
import type { Table } from "../storage/table.ts";
import { TenantRepository } from "../storage/tenant-repository.ts";
import { TokenRepository } from "../storage/token-repository.ts";
import { WrapRepository } from "../storage/wrap-repository.ts";
import { HookVerifier } from "../verifiers/hook-verifier.ts";
import type { RuntimeConfig } from "./config.ts";

export interface Runtime {
  readonly keyring: Keyring;
  readonly logger: Logger;
  readonly metrics: CounterMetrics;
  readonly config: RuntimeConfig;
  readonly tenants: TenantService;
  /** Tenant deletion by crypto-shredding, its checkpointed sweep and its certificate. */
  readonly tenantDeletion: TenantDeletion;
  readonly secrets: SecretService;
  readonly rotationPolicies: RotationPolicies;
  readonly valueRotation: ValueRotation;
  /** Versions listed, destroyed, pruned past maxVersions; secrets undeleted and purged. */
  readonly versionLifecycle: VersionLifecycle;
  readonly tokens: TokenService;
  /** IAM principals' bindings to roles and tenants (`/v1/bindings`). */
  readonly bindings: BindingService;
  /** What every route authenticates with: bearer tokens on `/v1`, bindings on `/iam/v1`. */
  readonly callers: CallerAuthentication;
  /** Every use case's permission check and audit records. */
  readonly gate: OperationGate;
  readonly auditLog: AuditLog;
  readonly denials: DenialWindows;
  readonly auditQueries: AuditQueries;
  readonly chainWriter: ChainWriter;
  /** Chains waiting records: run by the stream function, the local stream sequencer, or a catch-up. */
  readonly sequencer: Sequencer;
  /** For operators' tools that verify without a request (audit:verify). */
  readonly chainVerifier: ChainVerifier;
  /** CloudTrail KMS events into the audit trail (functions/audit). */
  readonly kmsEvents: KmsEventIngester;
  readonly dekRotation: DekRotation;
  readonly dekSweep: DekSweep;
  readonly kekRewrap: KekRewrap;
  /** `POST /v1/kek/rewrap`: records the request and hands it to `rewrapDispatch`. */
  readonly rewrapRequests: RewrapRequests;
  /** On Lambda the EventBridge request to the rotation function; otherwise a BackgroundRewrap. */
  readonly rewrapDispatch: RewrapDispatch;
  /** Only in runtimes created with `directoryBackfill: true`: the one Scan of tenant items. */
  readonly directoryBackfill?: DirectoryBackfill;
  readonly kekReport: KekReporter;
  readonly scheduledWork: ScheduledWork;
  readonly health: HealthService;
  /** The kill switch's check (every tenant operation) and its routes. */
  readonly sealGuard: SealGuard;
  readonly seals: SealControl;
  /** Response wrapping: `POST /v1/unwrap` and its lookup. */
  readonly wrapping: ResponseWrapping;
  readonly breakGlass: BreakGlass;
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
      keyring: createKmsKeyring({
        region: config.region,
        ...config.kms,
        requestTimeoutMs: config.awsRequestTimeoutMs,
      }),
      chainKeys: createKmsChainKeys({
        region: config.region,
        keyId: config.auditMacKeyId,
        requestTimeoutMs: config.awsRequestTimeoutMs,
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
  /** Where "Break Glass Activated" goes; by default EventBridge when a bus is configured, else the log. */
  readonly breakGlassEvents?: BreakGlassEvents;
  /** Where re-wrap requests go; by default a worker in this process (`npm start`, tests). */
  readonly rewrapDispatch?: RewrapDispatch;
  /**
   * May this runtime Scan the table to backfill the tenant directory? Only the rotation function and
   * `npm start` may; every other runtime answers work over all tenants with 503 until one has.
   */
  readonly directoryBackfill?: boolean;
  /** Resolves `CredentialRef`s; by default Secrets Manager (`SECRETS_MANAGER_ENDPOINT` for a test endpoint). */
  readonly references?: ReferenceResolver;
  /** Calls rotation verification hooks; by default HTTPS and Lambda (`VERIFIER_CA_FILE` adds a CA). */
  readonly verifier?: RotationVerifier;
  /** Locally, where the request path's records are also written for the sequencer (the stream's stand-in). */
  readonly auditWitness?: PendingWitness;
  /** Where chain heads are anchored outside the table. */
  readonly anchors?: AnchorLog;
  /**
   * Verify reads the anchors, but this runtime's sequencer appends none: the API's, whose role may only
   * read them. What it chains on a read of the trail reaches the stream too, and the audit function's
   * sequencer anchors the head it finds.
   */
  readonly anchorsReadOnly?: boolean;
}): Runtime {
  const logger = options.logger ?? createLogger();
  const metrics = options.metrics ?? new CounterMetrics();
  const { config, keyring, table } = options;
  const { rotation: rotationConfig } = config;
  const tenantRepository = new TenantRepository(table);
  const auditRepository = new AuditRepository(table);
  const secretRepository = new SecretRepository(table);
  const checkpoints = new CheckpointRepository(table);

  const chainKeys = options.chainKeys ?? defaultChainKeys(keyring);
  const chainWriter = new ChainWriter(auditRepository, chainKeys, logger);
  const appendedAnchors = options.anchorsReadOnly === true ? undefined : options.anchors;
  const sequencer = new Sequencer(chainWriter, auditRepository, chainKeys, appendedAnchors, metrics, logger, {
    anchorIntervalMs: config.auditAnchorIntervalMs,
  });
  const chainVerifier = new ChainVerifier(auditRepository, chainKeys, chainWriter, {
    unsequencedBoundMs: config.auditUnsequencedBoundMs,
    ...(options.anchors === undefined ? {} : { anchors: options.anchors }),
  });
  const auditLog = new AuditLog(auditRepository, chainKeys, metrics, logger, {
    ...(options.auditWitness === undefined ? {} : { witness: options.auditWitness }),
    ...(config.auditSequencing === "inline" ? { inline: sequencer } : {}),
  });
  const denials = new DenialWindows(
    auditLog,
    metrics,
    config.auditDenialWindowMs,
    async (tenantId) => (await tenantRepository.get(tenantId)) !== undefined,
  );
  const integrity = new ItemMacs(chainKeys.itemKeys());
  const dataKeys = new DataKeys(keyring, tenantRepository, new DataKeyCache(config.dataKeyCache));
  const sealRepository = new SealRepository(table);
  const sealGuard = new SealGuard(sealRepository, integrity, metrics, logger);
  const gate = new OperationGate(auditLog, denials, { check: sealGuard, dataKeys, metrics });
  const tokens = new TokenService({
    tokens: new TokenRepository(table),
    tenants: tenantRepository,
    integrity,
    gate,
    denials,
    metrics,
    logger,
  });
  const wrapping = new ResponseWrapping({
    wraps: new WrapRepository(table),
    sealer: new KeyringPayloadSealer(keyring),
    integrity,
    gate,
    denials,
    metrics,
    logger,
  });
  const bindings = new BindingService({
    bindings: new BindingRepository(table),
    tenants: tenantRepository,
    integrity,
    gate,
    denials,
    metrics,
    logger,
  });

  const sealer = new Sealer(dataKeys, metrics, rotationConfig.retireGraceMs / 2, rotationConfig.dekSealLimit);
  tokens.useWrapper(wrapping);
  const busName = config.rotation.eventBusName;
  const breakGlass = new BreakGlass({
    requests: new BreakGlassRepository(table),
    integrity,
    gate,
    events:
      options.breakGlassEvents ??
      (busName === undefined
        ? new LogBreakGlassEvents(logger)
        : new EventBridgeBreakGlassEvents(
            createEventBridgeClient({
              region: config.region,
              busName,
              endpoint: config.rotation.eventsEndpoint,
              stage: config.stage,
            }),
            busName,
            config.stage,
          )),
    isBootstrap: (tokenId) => tokens.isBootstrap(tokenId),
    metrics,
    logger,
  });
  tokens.useBreakGlass(breakGlass);

  const callers = new CallerAuthentication(tokens, bindings);
  const heads = new HeadWriter(secretRepository, sealer);
  const versionLifecycle = new VersionLifecycle(secretRepository, gate, heads, config.secretRecoveryWindowMs);
  const valueRotation = new ValueRotation(
    secretRepository,
    sealer,
    gate,
    heads,
    versionLifecycle,
    options.verifier ??
      new HookVerifier({
        region: config.region,
        ...(config.verification.ca === undefined ? {} : { ca: config.verification.ca }),
        ...(config.verification.lambdaEndpoint === undefined
          ? {}
          : { lambdaEndpoint: config.verification.lambdaEndpoint }),
      }),
    metrics,
  );
  const dekSweep = new DekSweep(
    tenantRepository,
    secretRepository,
    checkpoints,
    dataKeys,
    sealer,
    gate,
    logger,
    rotationConfig,
  );
  const itemRekey = new ItemRekey(
    {
      tokens: new TokenRepository(table),
      bindings: new BindingRepository(table),
      seals: sealRepository,
      deletions: new DeletionRepository(table),
      breakGlass: new BreakGlassRepository(table),
      wraps: new WrapRepository(table),
      tenants: tenantRepository,
    },
    integrity,
    keyring,
    metrics,
    logger,
    chainKeys.previousKeepers().length > 0,
    keyring.kind !== "kms",
  );
  const chainReanchor = new ChainReanchor({
    keys: chainKeys,
    verifier: chainVerifier,
    sequencer,
    trail: auditLog,
    repository: auditRepository,
    metrics,
    logger,
  });
  const kekRewrap = new KekRewrap(keyring, tenantRepository, checkpoints, metrics, logger, rotationConfig, {
    items: itemRekey,
    chains: chainReanchor,
  });
  const events =
    options.events ??
    createRotationEvents({
      logger,
      region: config.region,
      busName: rotationConfig.eventBusName,
      endpoint: rotationConfig.eventsEndpoint,
      stage: config.stage,
    });
  const dueScan = new DueScan(
    valueRotation,
    secretRepository,
    tenantRepository,
    checkpoints,
    metrics,
    logger,
  );
  const directoryBackfill = options.directoryBackfill
    ? new DirectoryBackfill(table, tenantRepository)
    : undefined;
  // The in-process worker runs what the rotation function runs on a request, so it is bound to the
  // scheduled work, which itself hands re-wraps to it: hence the late reference.
  let scheduledWork: ScheduledWork | undefined;
  const rewrapDispatch =
    options.rewrapDispatch ??
    new BackgroundRewrap(
      async (deadline, runId) => scheduledWork?.runRequestedRewrap(deadline, runId),
      logger,
    );
  const dekRotation = new DekRotation(tenantRepository, secretRepository, checkpoints, dataKeys, gate, {
    minIntervalMs: rotationConfig.dekRotateMinIntervalMs,
    periodMs: rotationConfig.dekRotationPeriodMs,
    sealThreshold: rotationConfig.dekSealRotateThreshold,
  });
  scheduledWork = new ScheduledWork(dekSweep, kekRewrap, dueScan, events, gate, metrics, logger, {
    handOff: rewrapDispatch,
    deks: dekRotation,
    ...(directoryBackfill === undefined ? {} : { backfill: directoryBackfill }),
  });
  return {
    keyring,
    logger,
    metrics,
    config,
    tenants: new TenantService(tenantRepository, dataKeys, gate),
    tenantDeletion: new TenantDeletion({
      tenants: tenantRepository,
      deletions: new DeletionRepository(table),
      checkpoints,
      dataKeys,
      integrity,
      heads: chainWriter,
      gate,
      options: { leaseMs: rotationConfig.leaseMs, pageSize: rotationConfig.pageSize },
    }),
    secrets: new SecretService(
      secretRepository,
      sealer,
      callers,
      gate,
      heads,
      versionLifecycle,
      tenantRepository,
      options.references ??
        new SecretsManagerResolver({
          region: config.region,
          cacheMs: config.references.cacheMs,
          ...(config.references.endpoint === undefined ? {} : { endpoint: config.references.endpoint }),
        }),
      sealGuard,
      wrapping,
    ),
    versionLifecycle,
    rotationPolicies: new RotationPolicies(secretRepository, gate, heads),
    valueRotation,
    tokens,
    bindings,
    callers,
    gate,
    auditLog,
    denials,
    auditQueries: new AuditQueries(auditRepository, chainWriter, chainVerifier, sequencer, gate),
    chainWriter,
    sequencer,
    chainVerifier,
    kmsEvents: new KmsEventIngester(auditLog, tenantRepository, metrics, config.kmsIngestion),
    dekRotation,
    dekSweep,
    kekRewrap,
    rewrapRequests: new RewrapRequests(keyring, checkpoints, gate, rewrapDispatch),
    rewrapDispatch,
    ...(directoryBackfill === undefined ? {} : { directoryBackfill }),
    kekReport: new KekReporter(keyring, tenantRepository, checkpoints, gate),
    scheduledWork,
    health: new HealthService(keyring, tenantRepository, chainWriter, gate, sealGuard),
    sealGuard,
    wrapping,
    breakGlass,
    seals: new SealControl({
      seals: sealRepository,
      guard: sealGuard,
      integrity,
      tenants: tenantRepository,
      dataKeys,
      gate,
      options: { unsealNeedsSecondAdmin: config.unsealRequiresSecondAdmin === true },
    }),
  };
}
