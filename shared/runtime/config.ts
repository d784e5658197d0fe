import { readFileSync } from "node:fs";
import type { Env } from "../domain/env.ts";
import { ConfigError } from "../domain/errors.ts";
import {
  DEFAULT_DEK_SEAL_LIMIT,
  DEFAULT_DEK_SEAL_ROTATE_THRESHOLD,
  DEK_SEAL_BOUND,
} from "../domain/sealing.ts";
import { DAY_MS } from "../domain/time.ts";

export interface RuntimeConfig {
  /** The stage (`STRONGBOX_ENVIRONMENT`, set by the CDK app); named in every event the service publishes. */
  readonly stage?: string;
  readonly tableName: string;
  readonly region: string;
  /** A DynamoDB-protocol endpoint (dynalite, DynamoDB Local); unset means the real service. */
  readonly dynamoEndpoint?: string;
  readonly kms?: {
    readonly keyId: string;
    readonly previousKeyIds: readonly string[];
    /** Only for pointing the SDK at a KMS-protocol test endpoint. */
    readonly endpoint?: string;
  };
  readonly dataKeyCache: { readonly maxAgeMs: number; readonly maxUses: number };
  /**
   * How long one DynamoDB or KMS request may take before the SDK abandons it and retries. Without it
   * a hung connection waits out the SDK's 300 s socket timeout per attempt, far past API Gateway's
   * 29 s, so the caller would get the gateway's untyped 504 instead of the service's typed 503.
   */
  readonly awsRequestTimeoutMs: number;
  /** The KMS HMAC key that authenticates the audit chain (`AUDIT_MAC_KEY_ID`); needed with KMS. */
  readonly auditMacKeyId?: string;
  /** `CredentialRef`s: how long a resolved value is reused at most, and a test endpoint for Secrets Manager. */
  readonly references: { readonly cacheMs: number; readonly endpoint?: string };
  /**
   * Rotation verification hooks: a PEM bundle to trust for HTTPS hooks besides the system's (the
   * contents of `VERIFIER_CA_FILE`), and a Lambda-protocol test endpoint (`LAMBDA_ENDPOINT`).
   */
  readonly verification: { readonly ca?: string; readonly lambdaEndpoint?: string };
  /** How long a deleted secret can be undeleted (`SECRET_RECOVERY_WINDOW_DAYS`, 30 by default). */
  readonly secretRecoveryWindowMs: number;
  /** Repeated denials by one actor within this window become one counted record; 0 turns that off. */
  readonly auditDenialWindowMs: number;
  /**
   * `deferred` (the default): the request path writes each record under its own key and a sequencer
   * chains it (the stream function in AWS, the in-process one in `npm start`). `inline` chains each
   * record before answering, as tests do to look at a chain as soon as a call returns.
   */
  readonly auditSequencing: "deferred" | "inline";
  /** Verify reports records waiting longer than this to be chained. */
  readonly auditUnsequencedBoundMs: number;
  /** How long a moved chain may go without its head anchored outside the table; 0 anchors every batch. */
  readonly auditAnchorIntervalMs: number;
  /**
   * The S3 bucket chain heads are anchored in (`AUDIT_ANCHOR_BUCKET`, set by the CDK app), and an
   * S3-protocol test endpoint (`S3_ENDPOINT`). Unset: `npm start` and the CLI's offline commands use
   * the anchor file under the data directory, and a Lambda function anchors nowhere.
   */
  readonly auditAnchors?: { readonly bucket: string; readonly endpoint?: string };
  /** For CloudTrail ingestion: this environment's KMS key ARNs and the service's own role ARNs. */
  readonly kmsIngestion: { readonly watchedKeyArns: string[]; readonly serviceRoleArns: string[] };
  /** `UNSEAL_REQUIRES_SECOND_ADMIN`: an unseal needs one admin's request and a different admin's call. */
  readonly unsealRequiresSecondAdmin?: boolean;
  readonly rotation: {
    /** How long after a DEK rotation older DEK versions wait before they can be retired. */
    readonly retireGraceMs: number;
    /** How often `npm start` runs the scheduled rotation work; 0 turns the timer off. */
    readonly intervalSeconds: number;
    /** How long a runner's claim on a sweep or re-wrap lasts without a checkpoint (0: tests only). */
    readonly leaseMs: number;
    /** Items per sweep page, and so per checkpoint. */
    readonly pageSize: number;
    /** `rotate-dek` on a tenant whose DEK was rotated less than this long ago is refused (429); 0 turns it off. */
    readonly dekRotateMinIntervalMs: number;
    /** The scheduled runner rotates a tenant's DEK once it is this old. */
    readonly dekRotationPeriodMs: number;
    /** The scheduled runner rotates a tenant's DEK once it has sealed this many values. */
    readonly dekSealRotateThreshold: number;
    /** Sealing under a DEK that has sealed this many values is refused (503 `dek_exhausted`). */
    readonly dekSealLimit: number;
    /** EventBridge bus for rotation events; without one they are log lines. */
    readonly eventBusName?: string;
    /** Only for pointing the SDK at an EventBridge-protocol test endpoint. */
    readonly eventsEndpoint?: string;
  };
}

function sequencing(env: Env): RuntimeConfig["auditSequencing"] {
  const value = env.AUDIT_SEQUENCING ?? "deferred";
  if (value !== "deferred" && value !== "inline") {
    throw new ConfigError("AUDIT_SEQUENCING", "AUDIT_SEQUENCING must be deferred or inline");
  }
  return value;
}

function positiveInteger(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^[1-9][0-9]{0,9}$/.test(raw)) throw new ConfigError(name, `${name} must be a positive integer`);
  return Number(raw);
}

/**
 * Writers may commit under a DEK snapshot for half this long, and the sweep waits this long before it
 * proves an old DEK unused, so it must comfortably exceed a write's duration. Tests that need a faster
 * sweep pass a config to createRuntime directly; no environment can turn the protection off.
 */
export const MIN_RETIRE_GRACE_SECONDS = 10;

/** Three attempts (the clients' maxAttempts) of 5 s and their backoff stay within API Gateway's 29 s. */
export const DEFAULT_AWS_REQUEST_TIMEOUT_MS = 5000;

function atLeast(env: Env, name: string, fallback: number, minimum: number): number {
  const value = nonNegativeInteger(env, name, fallback);
  if (value < minimum) throw new ConfigError(name, `${name} must be at least ${minimum}`);
  return value;
}

function nonNegativeInteger(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^(0|[1-9][0-9]{0,9})$/.test(raw))
    throw new ConfigError(name, `${name} must be a non-negative integer`);
  return Number(raw);
}

function flag(env: Env, name: string): boolean {
  const raw = env[name]?.trim() ?? "";
  if (raw === "" || raw === "false") return false;
  if (raw === "true") return true;
  throw new ConfigError(name, `${name} must be true or false`);
}

function dekSealBounds(env: Env): { dekSealRotateThreshold: number; dekSealLimit: number } {
  const threshold = positiveInteger(env, "DEK_SEAL_ROTATE_THRESHOLD", DEFAULT_DEK_SEAL_ROTATE_THRESHOLD);
  const limit = positiveInteger(env, "DEK_SEAL_LIMIT", DEFAULT_DEK_SEAL_LIMIT);
  if (limit >= DEK_SEAL_BOUND) throw new ConfigError("DEK_SEAL_LIMIT", "DEK_SEAL_LIMIT must be below 2^32");
  if (threshold >= limit) {
    throw new ConfigError(
      "DEK_SEAL_ROTATE_THRESHOLD",
      "DEK_SEAL_ROTATE_THRESHOLD must be below DEK_SEAL_LIMIT",
    );
  }
  return { dekSealRotateThreshold: threshold, dekSealLimit: limit };
}

const list = (raw: string | undefined): string[] =>
  (raw ?? "")
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");

export function readRuntimeConfig(env: Env): RuntimeConfig {
  const kmsKeyId = env.KMS_KEY_ID?.trim();
  const dynamoEndpoint = env.DYNAMODB_ENDPOINT?.trim();
  const kmsEndpoint = env.KMS_ENDPOINT?.trim();
  const auditMacKeyId = env.AUDIT_MAC_KEY_ID?.trim();
  const eventBusName = env.EVENT_BUS_NAME?.trim();
  const eventsEndpoint = env.EVENTBRIDGE_ENDPOINT?.trim();
  const stage = env.STRONGBOX_ENVIRONMENT?.trim();
  const anchorBucket = env.AUDIT_ANCHOR_BUCKET?.trim();
  const s3Endpoint = env.S3_ENDPOINT?.trim();
  // Events without a stage would reach every stage's rules alike, a re-wrap request included.
  if (eventBusName && !stage) {
    throw new ConfigError(
      "STRONGBOX_ENVIRONMENT",
      "EVENT_BUS_NAME is set but STRONGBOX_ENVIRONMENT is not: events must name the stage they come from",
    );
  }
  return {
    ...(stage ? { stage } : {}),
    tableName: env.TABLE_NAME?.trim() || "strongbox",
    region: env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim() || "us-east-1",
    ...(dynamoEndpoint ? { dynamoEndpoint } : {}),
    ...(kmsKeyId
      ? {
          kms: {
            keyId: kmsKeyId,
            previousKeyIds: list(env.KMS_KEY_ID_PREVIOUS),
            ...(kmsEndpoint ? { endpoint: kmsEndpoint } : {}),
          },
        }
      : {}),
    ...(auditMacKeyId ? { auditMacKeyId } : {}),
    references: {
      cacheMs: nonNegativeInteger(env, "REFERENCE_CACHE_SECONDS", 60) * 1000,
      ...(env.SECRETS_MANAGER_ENDPOINT?.trim() ? { endpoint: env.SECRETS_MANAGER_ENDPOINT.trim() } : {}),
    },
    verification: verificationConfig(env),
    secretRecoveryWindowMs: positiveInteger(env, "SECRET_RECOVERY_WINDOW_DAYS", 30) * 24 * 3600 * 1000,
    unsealRequiresSecondAdmin: flag(env, "UNSEAL_REQUIRES_SECOND_ADMIN"),
    auditDenialWindowMs: nonNegativeInteger(env, "AUDIT_DENIAL_WINDOW_SECONDS", 60) * 1000,
    auditSequencing: sequencing(env),
    auditUnsequencedBoundMs: positiveInteger(env, "AUDIT_UNSEQUENCED_BOUND_SECONDS", 300) * 1000,
    auditAnchorIntervalMs: nonNegativeInteger(env, "AUDIT_ANCHOR_INTERVAL_SECONDS", 60) * 1000,
    ...(anchorBucket
      ? { auditAnchors: { bucket: anchorBucket, ...(s3Endpoint ? { endpoint: s3Endpoint } : {}) } }
      : {}),
    kmsIngestion: {
      watchedKeyArns: list(env.WATCHED_KMS_KEY_ARNS),
      serviceRoleArns: list(env.SERVICE_ROLE_ARNS),
    },
    dataKeyCache: {
      maxAgeMs: positiveInteger(env, "DATA_KEY_CACHE_MAX_AGE_SECONDS", 300) * 1000,
      maxUses: positiveInteger(env, "DATA_KEY_CACHE_MAX_USES", 100_000),
    },
    awsRequestTimeoutMs: positiveInteger(env, "AWS_REQUEST_TIMEOUT_MS", DEFAULT_AWS_REQUEST_TIMEOUT_MS),
    rotation: {
      retireGraceMs: atLeast(env, "DEK_RETIRE_GRACE_SECONDS", 60, MIN_RETIRE_GRACE_SECONDS) * 1000,
      intervalSeconds: nonNegativeInteger(env, "ROTATION_INTERVAL_SECONDS", 300),
      leaseMs: nonNegativeInteger(env, "ROTATION_LEASE_SECONDS", 60) * 1000,
      pageSize: positiveInteger(env, "ROTATION_PAGE_SIZE", 100),
      dekRotateMinIntervalMs: nonNegativeInteger(env, "DEK_ROTATE_MIN_INTERVAL_SECONDS", 300) * 1000,
      dekRotationPeriodMs: positiveInteger(env, "DEK_ROTATION_PERIOD_DAYS", 90) * DAY_MS,
      ...dekSealBounds(env),
      ...(eventBusName ? { eventBusName } : {}),
      ...(eventsEndpoint ? { eventsEndpoint } : {}),
    },
  };
}

function verificationConfig(env: Env): RuntimeConfig["verification"] {
  const caFile = env.VERIFIER_CA_FILE?.trim();
  const lambdaEndpoint = env.LAMBDA_ENDPOINT?.trim();
  let ca: string | undefined;
  if (caFile) {
    try {
      ca = readFileSync(caFile, "utf8");
    } catch {
      throw new ConfigError("VERIFIER_CA_FILE", `VERIFIER_CA_FILE names ${caFile}, which cannot be read`);
    }
    if (!ca.includes("-----BEGIN CERTIFICATE-----")) {
      throw new ConfigError("VERIFIER_CA_FILE", "VERIFIER_CA_FILE must hold PEM certificates");
    }
  }
  return { ...(ca === undefined ? {} : { ca }), ...(lambdaEndpoint ? { lambdaEndpoint } : {}) };
}

/**
 * The CloudTrail ingestion function refuses to start without both lists: with no watched key it
 * would drop every event as not ours, and with no service role it would flag every call as foreign.
 */
export function requireKmsIngestionConfig(config: RuntimeConfig): void {
  if (config.kmsIngestion.watchedKeyArns.length === 0) {
    throw new ConfigError(
      "WATCHED_KMS_KEY_ARNS",
      "WATCHED_KMS_KEY_ARNS is empty: set it to this environment's KMS key ARNs, comma-separated",
    );
  }
  if (config.kmsIngestion.serviceRoleArns.length === 0) {
    throw new ConfigError(
      "SERVICE_ROLE_ARNS",
      "SERVICE_ROLE_ARNS is empty: set it to the IAM role ARNs of the service's functions, comma-separated",
    );
  }
}
