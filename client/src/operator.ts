import type { operations } from "./api-types.ts";
import { type StrongboxClientOptions, secretPath, transportFor } from "./client.ts";
import type { Body, Json, Query } from "./operation-types.ts";
import type { ApiRequest, Transport } from "./transport.ts";

export type HealthReport = Json<"getHealthReport", 200>;
export type KekReport = Json<"getKekReport", 200>;
export type RewrapStarted = Json<"requestKekRewrap", 202>;
export type RotationRun = Json<"runRotation", 200>;
export type TenantView = Json<"getTenant", 200>;
export type DekRotationStatus = Json<"getDekRotation", 200>;
export type AuditPage = Json<"listAuditTenant", 200>;
export type AuditVerification = Json<"verifyAuditTenant", 200>;
export type TokenCreated = Json<"createToken", 201>;
export type TokenInput = Body<"createToken">;
export type AuditFilter = Omit<Query<"listAuditTenant">, "cursor" | "limit">;
export type SealView = Json<"sealTenant", 200>;
export type TokenFilter = Omit<Query<"listTokens">, "cursor" | "limit">;
export type TokensPage = Json<"listTokens", 200>;
export type BreakGlassRequest = Json<"requestBreakGlass", 201>;
export type BreakGlassCredential = Json<"activateBreakGlass", 201>;

/** `_system` is the scope of what belongs to no tenant; its audit routes have no tenant in the path. */
const SYSTEM_SCOPE = "_system";
const segment = encodeURIComponent;
const breakGlassPath = (tenantId: string, id?: string) =>
  `/v1/tenants/${segment(tenantId)}/break-glass${id === undefined ? "" : `/${segment(id)}`}`;
/** `*` is the global seal's scope, as the seal's view names it. */
const sealBase = (scope: string) => (scope === "*" ? "/v1" : `/v1/tenants/${segment(scope)}`);
const auditBase = (scope: string) =>
  scope === SYSTEM_SCOPE ? "/v1/audit" : `/v1/tenants/${segment(scope)}/audit`;

/**
 * The operators' side of the API (tenants, tokens, keys, rotation runs, the audit trail), typed from
 * the same OpenAPI document as StrongboxClient. Nothing here is cached, and only reads are retried:
 * these calls change what the service holds, and none of them takes an idempotency token.
 */
export class StrongboxOperator {
  readonly #transport: Transport;

  constructor(
    options: Pick<StrongboxClientOptions, "baseUrl" | "token" | "sigv4" | "retry" | "timeoutMs" | "fetch">,
  ) {
    this.#transport = transportFor(options);
  }

  /** The public health check: `{"status"}` only. */
  health(): Promise<Json<"getHealth", 200>> {
    return this.#get("/health");
  }

  /** The admin report: the KEK, the store, each problem with its reason. */
  healthReport(): Promise<HealthReport> {
    return this.#get("/v1/health");
  }

  kekReport(): Promise<KekReport> {
    return this.#get("/v1/kek");
  }

  requestKekRewrap(): Promise<RewrapStarted> {
    return this.#send({ method: "POST", path: "/v1/kek/rewrap", retryable: false });
  }

  runRotation(): Promise<RotationRun> {
    return this.#send({ method: "POST", path: "/v1/rotation/run", retryable: false });
  }

  createTenant(tenantId: string): Promise<Json<"createTenant", 201>> {
    return this.#send({ method: "POST", path: "/v1/tenants", body: { tenantId }, retryable: false });
  }

  listTenants(page: { limit?: number; cursor?: string } = {}): Promise<Json<"listTenants", 200>> {
    return this.#get("/v1/tenants", { limit: page.limit, cursor: page.cursor });
  }

  getTenant(tenantId: string): Promise<TenantView> {
    return this.#get(`/v1/tenants/${segment(tenantId)}`);
  }

  /**
   * Crypto-shreds the tenant: its DEKs go first, then its items in a resumable sweep. 200 with the
   * deletion certificate once done; 202 while the sweep goes on (call again to resume it).
   */
  deleteTenant(tenantId: string): Promise<Json<"deleteTenant", 200> | Json<"deleteTenant", 202>> {
    return this.#send({
      method: "DELETE",
      path: `/v1/tenants/${segment(tenantId)}`,
      body: { confirm: tenantId },
      retryable: false,
    });
  }

  deletionCertificate(tenantId: string): Promise<Json<"getDeletionCertificate", 200>> {
    return this.#get(`/v1/tenants/${segment(tenantId)}/deletion-certificate`);
  }

  /** Metadata of every version, never a value. */
  secretVersions(
    tenantId: string,
    name: string,
    page: { limit?: number; cursor?: string } = {},
  ): Promise<Json<"listSecretVersions", 200>> {
    return this.#get(`${secretPath(tenantId, name)}/versions`, { limit: page.limit, cursor: page.cursor });
  }

  /** Irreversible: the version's ciphertext is removed. A retry of a destroyed version is a no-op. */
  async destroyVersion(tenantId: string, name: string, version: number): Promise<void> {
    await this.#send({
      method: "DELETE",
      path: `${secretPath(tenantId, name)}/versions/${version}`,
      retryable: true,
    });
  }

  undeleteSecret(tenantId: string, name: string): Promise<Json<"undeleteSecret", 200>> {
    return this.#send({ method: "POST", path: `${secretPath(tenantId, name)}/undelete`, retryable: false });
  }

  /** Destroys everything held for the name: every version, and the name itself. */
  async purgeSecret(tenantId: string, name: string): Promise<void> {
    await this.#send({ method: "POST", path: `${secretPath(tenantId, name)}/purge`, retryable: true });
  }

  dekRotation(tenantId: string): Promise<DekRotationStatus> {
    return this.#get(`/v1/tenants/${segment(tenantId)}/rotation`);
  }

  /** The kill switch: a tenant, or `*` for every tenant. */
  seal(scope: string, reason: string): Promise<SealView> {
    return this.#send({
      method: "POST",
      path: `${sealBase(scope)}/seal`,
      body: { reason },
      retryable: false,
    });
  }

  /** `done` is false while the unseal waits for a second admin (the stage's UNSEAL_REQUIRES_SECOND_ADMIN). */
  async unseal(scope: string, reason: string): Promise<{ view: SealView; done: boolean }> {
    const answer = await this.#transport.send<SealView>({
      method: "POST",
      path: `${sealBase(scope)}/unseal`,
      body: { reason },
      retryable: false,
    });
    return { view: answer.body, done: answer.status === 200 };
  }

  /** The access review: one page of tokens' metadata, never a hash. */
  listTokens(filter: TokenFilter = {}, page: { limit?: number; cursor?: string } = {}): Promise<TokensPage> {
    return this.#get("/v1/tokens", { ...filter, limit: page.limit, cursor: page.cursor });
  }

  requestBreakGlass(tenantId: string, reason: string, durationMinutes: number): Promise<BreakGlassRequest> {
    return this.#send({
      method: "POST",
      path: breakGlassPath(tenantId),
      body: { reason, durationMinutes },
      retryable: false,
    });
  }

  approveBreakGlass(tenantId: string, id: string): Promise<BreakGlassRequest> {
    return this.#send({ method: "POST", path: `${breakGlassPath(tenantId, id)}/approve`, retryable: false });
  }

  /** The requester's `sbg_` credential, shown once. */
  activateBreakGlass(tenantId: string, id: string): Promise<BreakGlassCredential> {
    return this.#send({ method: "POST", path: `${breakGlassPath(tenantId, id)}/activate`, retryable: false });
  }

  revokeBreakGlass(tenantId: string, id: string): Promise<BreakGlassRequest> {
    return this.#send({ method: "POST", path: `${breakGlassPath(tenantId, id)}/revoke`, retryable: false });
  }

  createToken(input: TokenInput): Promise<TokenCreated> {
    return this.#send({ method: "POST", path: "/v1/tokens", body: input, retryable: false });
  }

  /** Consumes a wrapping token: the payload, exactly once; a second unwrap is a 410. */
  unwrap(token: string): Promise<Json<"unwrap", 200>> {
    return this.#send({ method: "POST", path: "/v1/unwrap", body: { token }, retryable: false });
  }

  async revokeToken(id: string): Promise<void> {
    await this.#send({ method: "DELETE", path: `/v1/tokens/${segment(id)}`, retryable: false });
  }

  auditPage(
    scope: string,
    filter: AuditFilter,
    page: { limit?: number; cursor?: string } = {},
  ): Promise<AuditPage> {
    const query = { ...filter, limit: page.limit, cursor: page.cursor };
    return this.#get(auditBase(scope), query);
  }

  /** One export page as JSON lines, its trailer last ([audit chain](../../docs/audit-chain.md)). */
  auditExport(scope: string, cursor?: string): Promise<string> {
    return this.#send({
      method: "GET",
      path: `${auditBase(scope)}/export`,
      query: { cursor },
      retryable: true,
      raw: true,
    });
  }

  auditVerify(
    scope: string,
    query: Readonly<Record<string, string | undefined>> = {},
  ): Promise<AuditVerification> {
    return this.#get(`${auditBase(scope)}/verify`, query);
  }

  #get<T>(path: string, query?: ApiRequest["query"]): Promise<T> {
    return this.#send({ method: "GET", path, ...(query === undefined ? {} : { query }), retryable: true });
  }

  async #send<T>(request: ApiRequest): Promise<T> {
    return (await this.#transport.send<T>(request)).body;
  }
}

export type { operations };
