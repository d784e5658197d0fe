import type { AuditTrail } from "../../domain/audit-trail.ts";
import type { KmsApiCall } from "../../domain/cloudtrail.ts";
import { tenantIdSchema } from "../../domain/schemas.ts";
import { SYSTEM_SCOPE } from "../../domain/types.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";

/**
 * Operations that use a key: only the service's own roles may call them on its keys. GenerateMac and
 * VerifyMac are here because whoever can call GenerateMac on the audit HMAC key can forge the chain.
 */
const DATA_OPERATIONS = new Set([
  "Decrypt",
  "Encrypt",
  "GenerateDataKey",
  "GenerateDataKeyWithoutPlaintext",
  "GenerateDataKeyPair",
  "GenerateDataKeyPairWithoutPlaintext",
  "ReEncrypt",
  "GenerateMac",
  "VerifyMac",
]);
/** Operations that weaken or destroy a key, or hand it to someone: anomalous whoever calls them. */
const KEY_CHANGES = new Set(["DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy", "CreateGrant"]);
const TENANT_CONTEXT_KEY = "strongbox:tenant";
const MAX_KNOWN_TENANTS = 10_000;

export interface KmsIngestionConfig {
  /** This environment's key ARNs (`WATCHED_KMS_KEY_ARNS`): the KEKs and the audit HMAC key. */
  readonly watchedKeyArns: readonly string[];
  /** The IAM role ARNs of the service's own functions (`SERVICE_ROLE_ARNS`). */
  readonly serviceRoleArns: readonly string[];
}

export type IngestResult =
  | { readonly status: "recorded"; readonly scope: string; readonly anomalies: readonly string[] }
  | { readonly status: "ignored" };

/**
 * Turns CloudTrail's record of a KMS call into an audit record. It reads only the event and the
 * tenant table: it never calls KMS itself, so ingesting cannot create the CloudTrail events it
 * consumes (the loop of elastic-serverless-forwarder #749). The one KMS call on its path is the audit
 * chain's GenerateMac, once per instance per day. The deployed EventBridge rule leaves the audit
 * function's own calls on the MAC key out; were one to arrive, it would be appended with the key
 * already in memory, so even then the loop would end there.
 */
export class KmsEventIngester {
  /** Every form a watched key may be named by (key ARN, bare key id), to its key ARN. */
  readonly #watched: ReadonlyMap<string, string>;
  readonly #serviceRoles: ReadonlySet<string>;
  readonly #knownTenants = new Set<string>();
  readonly #trail: AuditTrail;
  readonly #tenants: TenantRepository;
  readonly #metrics: MetricsRecorder;

  constructor(
    trail: AuditTrail,
    tenants: TenantRepository,
    metrics: MetricsRecorder,
    config: KmsIngestionConfig,
  ) {
    this.#trail = trail;
    this.#tenants = tenants;
    this.#metrics = metrics;
    this.#watched = new Map(
      config.watchedKeyArns.flatMap((arn) => {
        const keyId = /:key\/([^/]+)$/.exec(arn)?.[1];
        return keyId === undefined ? [[arn, arn]] : [[arn, arn] as const, [keyId, arn] as const];
      }),
    );
    this.#serviceRoles = new Set(config.serviceRoleArns);
  }

  async ingest(call: KmsApiCall): Promise<IngestResult> {
    const keyArn = this.#watchedKey(call);
    if (keyArn === undefined) return { status: "ignored" };
    const principal = principalOf(call);
    const anomalies: string[] = [];
    if (DATA_OPERATIONS.has(call.eventName) && !this.#serviceRoles.has(principal)) {
      anomalies.push(`${call.eventName} by ${principal}, which is not one of the service's roles`);
    }
    if (KEY_CHANGES.has(call.eventName)) anomalies.push(`${call.eventName} on a key of the service`);
    const named = call.requestParameters?.encryptionContext?.[TENANT_CONTEXT_KEY];
    let scope = SYSTEM_SCOPE;
    if (named !== undefined) {
      // `_system` is no tenant: it is the context of a wrapped new token's data key (response wrapping).
      if (named === SYSTEM_SCOPE) scope = SYSTEM_SCOPE;
      else if (await this.#isTenant(named)) scope = named;
      else anomalies.push("encryption context names an unknown tenant");
    }
    if (anomalies.length > 0) this.#metrics.increment("KmsAnomalies", anomalies.length);
    const outcome = call.errorCode === undefined ? "success" : "failure";
    const facts = [
      `${call.eventName} on ${keyArn} at ${call.eventTime}`,
      ...(call.errorCode === undefined ? [] : [`error ${call.errorCode}`]),
      ...(named !== undefined && named !== SYSTEM_SCOPE && scope === SYSTEM_SCOPE
        ? [`context tenant ${JSON.stringify(named.slice(0, 64))}`]
        : []),
      ...anomalies.map((anomaly) => `anomaly: ${anomaly}`),
    ];
    await this.#trail.record({
      tenantId: scope,
      action: "kms.call",
      outcome,
      actor: principal,
      role: "aws",
      requestId: call.eventID,
      detail: facts.join("; "),
      ...(anomalies.length > 0 ? { severity: "high" as const } : {}),
    });
    return { status: "recorded", scope, anomalies };
  }

  /**
   * The ARN of a watched key named by the event's resources or, when those are missing, its request
   * (by key ARN or bare key id); calls on other keys are not ours. An alias in the request cannot be
   * resolved without calling KMS, so such a call is matched by its resources only.
   */
  #watchedKey(call: KmsApiCall): string | undefined {
    const named = [...(call.resources ?? []).map((resource) => resource.ARN), call.requestParameters?.keyId];
    for (const name of named) {
      const arn = name === undefined ? undefined : this.#watched.get(name);
      if (arn !== undefined) return arn;
    }
    return undefined;
  }

  async #isTenant(tenantId: string): Promise<boolean> {
    if (!tenantIdSchema.safeParse(tenantId).success) return false;
    if (this.#knownTenants.has(tenantId)) return true;
    const exists = (await this.#tenants.get(tenantId)) !== undefined;
    if (exists && this.#knownTenants.size < MAX_KNOWN_TENANTS) this.#knownTenants.add(tenantId);
    return exists;
  }
}

/**
 * Who called: for an assumed role, the role that issued the session (what SERVICE_ROLE_ARNS lists),
 * not the per-session ARN; otherwise the identity's ARN, or the AWS service that acted.
 */
function principalOf(call: KmsApiCall): string {
  const identity = call.userIdentity;
  if (identity.type === "AssumedRole") {
    return identity.sessionContext?.sessionIssuer?.arn ?? identity.arn ?? "unknown-assumed-role";
  }
  return identity.arn ?? identity.invokedBy ?? identity.principalId ?? `unknown-${identity.type}`;
}
