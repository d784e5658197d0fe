import { type EnvelopeBinding, envelopeDekVersion, openValue, sealValue } from "../crypto/envelope.ts";
import {
  ConflictError,
  DecryptError,
  KekMismatchError,
  NotFoundError,
  StrongboxError,
} from "../domain/errors.ts";
import type { PutSecretInput } from "../domain/schemas.ts";
import type { Page, SealedVersion, SecretHead, SecretSummary, SecretValue } from "../domain/types.ts";
import type { MetricsRecorder } from "../observability/metrics.ts";
import type { SecretRepository } from "../storage/secret-repository.ts";
import type { TenantRepository } from "../storage/tenant-repository.ts";
import type { AuditService } from "./audit-service.ts";
import { type Caller, now, type RequestContext } from "./context.ts";
import type { DataKeys } from "./data-keys.ts";
import type { TokenService } from "./token-service.ts";

/** Writers racing without `cas` retry on a fresh head this many times before giving up with 409. */
const MAX_WRITE_ATTEMPTS = 5;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

const isLive = (head: SecretHead | undefined): head is SecretHead =>
  head !== undefined && head.deletedAt === undefined;

export class SecretService {
  constructor(
    private readonly secrets: SecretRepository,
    private readonly tenants: TenantRepository,
    private readonly dataKeys: DataKeys,
    private readonly tokens: TokenService,
    private readonly audit: AuditService,
    private readonly metrics: MetricsRecorder,
  ) {}

  async write(
    ctx: RequestContext,
    tenantId: string,
    name: string,
    input: PutSecretInput,
  ): Promise<{ name: string; version: number }> {
    const target = { tenantId, action: "secret.write", secretName: name } as const;
    await this.audit.authorize(ctx, "secret:write", target);
    return this.audit.aroundChange(
      this.audit.entry(ctx, target),
      () => this.commitNextVersion(tenantId, name, input),
      ({ version }) => ({ version }),
    );
  }

  /**
   * The hot path. It authenticates the caller itself so that the token and the secret's head are
   * looked up together, in one round trip; the head is used only once the token checks out.
   */
  async read(
    caller: Caller,
    tenantId: string,
    name: string,
    reason: string,
    requestedVersion?: number,
  ): Promise<SecretValue> {
    const target = { tenantId, action: "secret.read", secretName: name } as const;
    const [principal, head] = await Promise.allSettled([
      this.tokens.authenticate(caller.authorization, caller.requestId, target),
      this.secrets.getHead(tenantId, name),
    ]);
    if (principal.status === "rejected") throw principal.reason;
    const ctx = { requestId: caller.requestId, principal: principal.value };
    await this.audit.authorize(ctx, "secret:read", target);
    if (head.status === "rejected") throw head.reason;
    const sealed = await this.findVersion(head.value, requestedVersion);
    if (sealed === undefined) {
      await this.audit.recordBestEffort(
        this.audit.entry(ctx, { ...target, reason, outcome: "failure", detail: "not_found" }),
      );
      const which = requestedVersion === undefined ? "" : ` version ${requestedVersion}`;
      throw new NotFoundError(`secret ${name}${which} does not exist in tenant ${tenantId}`);
    }
    const binding = { tenantId, secretName: name, version: sealed.version };
    let value: string;
    try {
      value = await this.open(tenantId, sealed, binding);
    } catch (error) {
      const detail = error instanceof StrongboxError ? error.code : "internal_error";
      await this.audit.recordBestEffort(
        this.audit.entry(ctx, { ...target, version: sealed.version, reason, outcome: "failure", detail }),
      );
      throw error;
    }
    // The value is returned only once its read is on the record.
    await this.audit.record(
      this.audit.entry(ctx, { ...target, version: sealed.version, reason, outcome: "success" }),
    );
    return { name, version: sealed.version, value, createdAt: sealed.createdAt };
  }

  async list(
    ctx: RequestContext,
    tenantId: string,
    limit: number,
    cursor?: string,
  ): Promise<Page<SecretSummary>> {
    const target = { tenantId, action: "secret.list" } as const;
    await this.audit.authorize(ctx, "secret:list", target);
    const page = await this.secrets.list(tenantId, limit, cursor);
    await this.audit.record(this.audit.entry(ctx, { ...target, outcome: "success" }));
    return page;
  }

  async delete(ctx: RequestContext, tenantId: string, name: string): Promise<void> {
    const target = { tenantId, action: "secret.delete", secretName: name } as const;
    await this.audit.authorize(ctx, "secret:delete", target);
    await this.audit.aroundChange(this.audit.entry(ctx, target), async () => {
      if (!(await this.secrets.softDelete(tenantId, name, now()))) {
        throw new NotFoundError(`secret ${name} does not exist in tenant ${tenantId}`);
      }
    });
  }

  private async commitNextVersion(
    tenantId: string,
    name: string,
    input: PutSecretInput,
  ): Promise<{ name: string; version: number }> {
    const tenant = await this.tenants.get(tenantId);
    if (tenant === undefined) throw new NotFoundError(`tenant ${tenantId} does not exist`);
    const dekVersion = tenant.currentDekVersion;
    const dek = await this.countingDecryptFailures(() =>
      this.dataKeys.unwrapped(tenantId, dekVersion, tenant),
    );
    const plaintext = utf8Encoder.encode(input.value);

    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt += 1) {
      const head = await this.secrets.getHead(tenantId, name);
      this.checkCas(input.cas, head, name);
      const currentVersion = head?.current.version ?? 0;
      const version = currentVersion + 1;
      const binding = { tenantId, secretName: name, version };
      const next = { version, envelope: sealValue(dek, dekVersion, plaintext, binding), createdAt: now() };
      // Archive before the head moves on, so the version being replaced stays readable throughout.
      if (head !== undefined) await this.secrets.archive(tenantId, name, head.current);
      if (await this.secrets.commit(tenantId, name, next, currentVersion)) return { name, version };
      if (input.cas !== undefined) break;
    }
    throw new ConflictError(`secret ${name} was changed by another writer; read it and retry`);
  }

  /** Every failure to decrypt, whether of a DEK or of a value, is counted once, here. */
  private async countingDecryptFailures<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof DecryptError || error instanceof KekMismatchError) {
        this.metrics.increment("DecryptFailures");
      }
      if (error instanceof KekMismatchError) this.metrics.increment("KekMismatches");
      throw error;
    }
  }

  private open(tenantId: string, sealed: SealedVersion, binding: EnvelopeBinding): Promise<string> {
    return this.countingDecryptFailures(async () => {
      const dek = await this.dataKeys.unwrapped(tenantId, envelopeDekVersion(sealed.envelope));
      return utf8Decoder.decode(openValue(dek, sealed.envelope, binding));
    });
  }

  private checkCas(cas: number | undefined, head: SecretHead | undefined, name: string): void {
    if (cas === undefined) return;
    if (cas === 0 && isLive(head)) {
      throw new ConflictError(`secret ${name} already exists (cas 0 means create only)`);
    }
    if (cas > 0 && (!isLive(head) || head.current.version !== cas)) {
      const actual = isLive(head) ? `version ${head.current.version}` : "no live version";
      throw new ConflictError(`secret ${name} has ${actual}, not version ${cas}`);
    }
  }

  private async findVersion(
    head: SecretHead | undefined,
    requestedVersion: number | undefined,
  ): Promise<SealedVersion | undefined> {
    if (!isLive(head)) return undefined;
    if (requestedVersion === undefined || requestedVersion === head.current.version) return head.current;
    if (requestedVersion > head.current.version) return undefined;
    return this.secrets.getArchivedVersion(head.tenantId, head.name, requestedVersion);
  }
}
