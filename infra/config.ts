/**
 * The closed set of environments. Each gets its own Stage, its own KMS keys (so its own KEK), its own
 * table and its own bootstrap secret: nothing is shared between environments.
 */
export const ENVIRONMENT_NAMES = ["dev", "staging", "prod"] as const;
export type EnvironmentName = (typeof ENVIRONMENT_NAMES)[number];

export interface EnvironmentConfig {
  readonly name: EnvironmentName;
  /** Table, keys and logs survive stack deletion, and the table refuses deletion. */
  readonly protectData: boolean;
  readonly logRetentionDays: 7 | 30 | 365;
  readonly api: { readonly rateLimit: number; readonly burstLimit: number };
  /** An EventBridge schedule expression for the rotation run. */
  readonly rotationSchedule: string;
  /** Days after which the rotation run rotates a tenant's DEK (`DEK_ROTATION_PERIOD_DAYS`). */
  readonly dekRotationPeriodDays: number;
  /** Create a CloudTrail trail in this stage; off where an organisation trail already delivers KMS events. */
  readonly createTrail: boolean;
  readonly alarms: {
    /** DecryptFailures per 5 minutes above which the alarm fires. */
    readonly decryptFailureThreshold: number;
  };
  /**
   * The IAM role (name, path `/`) that administers this stage's KMS keys: it may change, disable and
   * schedule the deletion of them, never use them. KMS refuses a key policy naming a role that does not
   * exist, so it must exist before the first deploy (docs/deploy.md).
   */
  readonly keyAdministratorRoleName: string;
  /**
   * Concurrency set aside for these functions. An API flood must not take every instance the account
   * may run and leave audit ingestion throttled until its queue gives up; rotation runs hold a lease,
   * so more than a couple of instances would only wait on it.
   */
  readonly reservedConcurrency: { readonly audit: number; readonly rotation: number };
  /**
   * `CredentialRef`s (aws-sm://…): the API may read (GetSecretValue, DescribeSecret) only Secrets
   * Manager secrets in this account and region whose name starts with this prefix. A reference to any
   * other secret is refused by IAM and answered 502 `reference_denied`.
   */
  readonly referencedSecretNamePrefix: string;
  /**
   * Rotation verification hooks on Lambda: the API (promote) and rotation (scheduled) functions may
   * invoke only functions in this account and region whose name starts with this prefix.
   */
  readonly verifierFunctionNamePrefix: string;
  /** A sealed tenant is unsealed by one admin's request and a different admin's approval (seed 002 §7.1). */
  readonly unsealRequiresSecondAdmin: boolean;
  /**
   * Days each audit chain anchor is locked in the anchor bucket (Object Lock, compliance mode): until
   * then nobody, the account's root included, can delete or overwrite it. Where data is not protected
   * the anchors also expire a day after their lock ends, so the bucket empties itself.
   */
  readonly auditAnchorRetentionDays: number;
}

const CONFIGS: Readonly<Record<EnvironmentName, Omit<EnvironmentConfig, "name">>> = {
  dev: {
    protectData: false,
    logRetentionDays: 7,
    api: { rateLimit: 20, burstLimit: 40 },
    rotationSchedule: "rate(1 day)",
    dekRotationPeriodDays: 90,
    createTrail: false,
    alarms: { decryptFailureThreshold: 5 },
    keyAdministratorRoleName: "strongbox-dev-key-admin",
    referencedSecretNamePrefix: "strongbox-ref/dev/",
    verifierFunctionNamePrefix: "strongbox-verifier-dev-",
    reservedConcurrency: { audit: 2, rotation: 2 },
    unsealRequiresSecondAdmin: false,
    auditAnchorRetentionDays: 1,
  },
  staging: {
    protectData: false,
    logRetentionDays: 30,
    api: { rateLimit: 50, burstLimit: 100 },
    rotationSchedule: "rate(1 day)",
    dekRotationPeriodDays: 90,
    createTrail: false,
    alarms: { decryptFailureThreshold: 1 },
    keyAdministratorRoleName: "strongbox-staging-key-admin",
    referencedSecretNamePrefix: "strongbox-ref/staging/",
    verifierFunctionNamePrefix: "strongbox-verifier-staging-",
    reservedConcurrency: { audit: 5, rotation: 2 },
    unsealRequiresSecondAdmin: true,
    auditAnchorRetentionDays: 30,
  },
  prod: {
    protectData: true,
    logRetentionDays: 365,
    api: { rateLimit: 200, burstLimit: 400 },
    rotationSchedule: "cron(0 3 * * ? *)",
    dekRotationPeriodDays: 90,
    createTrail: true,
    alarms: { decryptFailureThreshold: 0 },
    keyAdministratorRoleName: "strongbox-prod-key-admin",
    referencedSecretNamePrefix: "strongbox-ref/prod/",
    verifierFunctionNamePrefix: "strongbox-verifier-prod-",
    reservedConcurrency: { audit: 10, rotation: 2 },
    unsealRequiresSecondAdmin: true,
    auditAnchorRetentionDays: 365,
  },
};

export function environmentConfig(name: EnvironmentName): EnvironmentConfig {
  return { name, ...CONFIGS[name] };
}

export function isEnvironmentName(value: string): value is EnvironmentName {
  return (ENVIRONMENT_NAMES as readonly string[]).includes(value);
}

/**
 * Where each stage deploys. Context (`-c account=... -c region=...`) wins over the CLI's environment;
 * the offline fallback lets `npm run synth` and the tests run with no AWS credentials at all.
 */
export function deploymentTarget(
  context: (key: string) => unknown,
  env: Record<string, string | undefined>,
): { account: string; region: string } {
  const fromContext = (key: string) => {
    const value = context(key);
    return typeof value === "string" && value !== "" ? value : undefined;
  };
  return {
    account: fromContext("account") ?? env.CDK_DEFAULT_ACCOUNT ?? "111111111111",
    region: fromContext("region") ?? env.CDK_DEFAULT_REGION ?? "us-east-1",
  };
}
