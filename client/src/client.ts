import type { operations } from "./api-types.ts";
import { type CacheEvent, type CacheOptions, RotationAwareCache } from "./cache.ts";
import { ReasonRequiredError, StrongboxApiError, StrongboxConfigError } from "./errors.ts";
import type { Body, Json } from "./operation-types.ts";
import { type Sigv4Options, sigv4 } from "./sigv4.ts";
import { type ApiRequest, type Auth, type RetryOptions, Transport } from "./transport.ts";

/** The client never asks for a wrapped read (`wrapTtlSeconds`), so its reads answer with the value. */
export type SecretValue = Exclude<Json<"getSecret", 200>, { wrap: unknown }>;
export type SecretWritten = Json<"putSecret", 200>;
export type SecretsPage = Json<"listSecrets", 200>;
export type RotationPolicy = Json<"setRotationPolicy", 200>;
export type RotateResult = Json<"rotateSecret", 200>;
export type Labels = Json<"promoteSecret", 200>;
export type DueSecretsPage = Json<"listDueSecrets", 200>;
export type DekRotated = Json<"rotateDek", 200>;
export type PutSecretInput = Body<"putSecret">;
export type RotationPolicyInput = Body<"setRotationPolicy">;
export type Stage = NonNullable<NonNullable<operations["getSecret"]["parameters"]["query"]>["stage"]>;

export interface StrongboxClientOptions {
  /** The API's base URL, e.g. `https://abc123.execute-api.eu-west-1.amazonaws.com`; plain http only to loopback. */
  readonly baseUrl: string;
  /** A bearer token (`sbx_…`). */
  readonly token?: string;
  /** SigV4 with the caller's IAM role instead of a token. */
  readonly sigv4?: Sigv4Options;
  /** The audit reason for every read that gives none; the API requires one. */
  readonly reason?: string;
  readonly cache?: CacheOptions | false;
  readonly retry?: RetryOptions;
  readonly timeoutMs?: number;
  /** Identifiers and error codes only, never a value: when a stale value is served, or a refresh fails. */
  readonly logger?: { warn(message: string, fields: Record<string, string | number | undefined>): void };
  /** For tests and benches. */
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface ReadOptions {
  /** Overrides the client's reason for this read. */
  readonly reason?: string;
  readonly version?: number;
  readonly stage?: Stage;
}

/** The "Secret Rotated" event as EventBridge delivers it, or just its detail. */
export type SecretRotatedEvent =
  | {
      readonly "detail-type"?: string;
      readonly detail: { readonly tenantId: string; readonly secretName: string };
    }
  | { readonly tenantId: string; readonly secretName: string };

const MAX_REASON_LENGTH = 256;
const LOOPBACK = new Set(["127.0.0.1", "[::1]", "localhost"]);

/** The audit reason as the API takes it: RFC 8187 form when it is not plain ASCII or holds a `%`. */
function reasonHeader(reason: unknown): string {
  if (typeof reason !== "string" || reason.trim() === "") {
    throw new ReasonRequiredError("a read needs an audit reason: set `reason` on the client or on the call");
  }
  const text = reason.trim();
  if (text.length > MAX_REASON_LENGTH || /\p{Cc}/u.test(text)) {
    throw new ReasonRequiredError(
      `an audit reason is at most ${MAX_REASON_LENGTH} characters without control characters`,
    );
  }
  return /^[\x20-\x24\x26-\x7e]*$/.test(text) ? text : `UTF-8''${encodeURIComponent(text)}`;
}

export function parseBaseUrl(raw: unknown): URL {
  let url: URL;
  try {
    url = new URL(String(raw));
  } catch {
    throw new StrongboxConfigError("baseUrl is not a URL");
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && LOOPBACK.has(url.hostname))) {
    throw new StrongboxConfigError("baseUrl must be https (plain http only to a loopback address)");
  }
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    throw new StrongboxConfigError("baseUrl takes no query, fragment or credentials");
  }
  return url;
}

/** An idempotency token as the API takes it (8 to 64 of A-Za-z0-9_-), so a write may be retried. */
const requestToken = () => `c${crypto.randomUUID().replaceAll("-", "")}`;

const segment = encodeURIComponent;

/**
 * Strongbox's HTTP API, typed from its OpenAPI document, with reads cached until their value is due
 * to change. Create one per process, at module scope in a Lambda function: a warm invocation then
 * reads from the cache and makes no call.
 */
export class StrongboxClient {
  readonly #transport: Transport;
  readonly #reason: string | undefined;
  readonly #cache: RotationAwareCache<SecretValue> | undefined;

  constructor(options: StrongboxClientOptions) {
    if (options.reason !== undefined) reasonHeader(options.reason);
    this.#reason = options.reason;
    this.#transport = transportFor(options);
    const logger = options.logger;
    const onEvent = (event: CacheEvent) => {
      const [tenantId, name] = event.key.split("\u0000");
      logger?.warn(event.kind === "stale" ? "serving a stale secret" : "background refresh failed", {
        tenantId,
        name,
        code: event.error instanceof StrongboxApiError ? event.error.code : (event.error as Error)?.name,
        requestId: event.error instanceof StrongboxApiError ? event.error.requestId : undefined,
      });
    };
    this.#cache =
      options.cache === false
        ? undefined
        : new RotationAwareCache<SecretValue>(options.cache ?? {}, options.now ?? Date.now, onEvent);
  }

  /** A secret's value: the current version, or the one `version` or `stage` names. */
  getSecret(tenantId: string, name: string, options: ReadOptions = {}): Promise<SecretValue> {
    try {
      const reason = reasonHeader(options.reason ?? this.#reason);
      const load = () => this.#read(tenantId, name, options, reason);
      if (this.#cache === undefined) return load();
      const key = `${tenantId}\u0000${name}\u0000${options.version ?? ""}\u0000${options.stage ?? ""}`;
      const got = this.#cache.get(key, load);
      return got instanceof Promise ? got : Promise.resolve(got);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Writes the next version. It carries a clientRequestToken (one is made if none is given), so it is retried safely. */
  async putSecret(tenantId: string, name: string, input: PutSecretInput): Promise<SecretWritten> {
    const body = { ...input, clientRequestToken: input.clientRequestToken ?? requestToken() };
    return this.#write(tenantId, name, {
      method: "PUT",
      path: secretPath(tenantId, name),
      body,
      retryable: true,
    });
  }

  async deleteSecret(tenantId: string, name: string): Promise<void> {
    await this.#write(tenantId, name, {
      method: "DELETE",
      path: secretPath(tenantId, name),
      retryable: false,
    });
  }

  async listSecrets(tenantId: string, page: { limit?: number; cursor?: string } = {}): Promise<SecretsPage> {
    const query = { limit: page.limit, cursor: page.cursor };
    return this.#send({
      method: "GET",
      path: `/v1/tenants/${segment(tenantId)}/secrets`,
      query,
      retryable: true,
    });
  }

  /** Rotates now, with a clientRequestToken (made if none is given), so it is retried safely. */
  async rotateSecret(
    tenantId: string,
    name: string,
    options: { clientRequestToken?: string } = {},
  ): Promise<RotateResult> {
    const body = { clientRequestToken: options.clientRequestToken ?? requestToken() };
    return this.#write(tenantId, name, {
      method: "POST",
      path: `${secretPath(tenantId, name)}/rotate`,
      body,
      retryable: true,
    });
  }

  /** Pending becomes current. The API takes no idempotency token here, so it is never retried. */
  async promoteSecret(tenantId: string, name: string, options: { version?: number } = {}): Promise<Labels> {
    return this.#write(tenantId, name, {
      method: "POST",
      path: `${secretPath(tenantId, name)}/promote`,
      body: options.version === undefined ? {} : { version: options.version },
      retryable: false,
    });
  }

  /** Makes the previous version current again; never retried (no idempotency token). */
  async rollbackSecret(tenantId: string, name: string, version: number): Promise<Labels> {
    return this.#write(tenantId, name, {
      method: "POST",
      path: `${secretPath(tenantId, name)}/rollback`,
      body: { version },
      retryable: false,
    });
  }

  /** Sets the rotation policy, which gives the secret's rotationDueAt; never retried. */
  async setRotationPolicy(
    tenantId: string,
    name: string,
    policy: RotationPolicyInput,
  ): Promise<RotationPolicy> {
    return this.#write(tenantId, name, {
      method: "PUT",
      path: `${secretPath(tenantId, name)}/rotation`,
      body: policy,
      retryable: false,
    });
  }

  async listDueSecrets(
    tenantId: string,
    options: { withinDays?: number; limit?: number; cursor?: string } = {},
  ): Promise<DueSecretsPage> {
    return this.#send({
      method: "GET",
      path: `/v1/tenants/${segment(tenantId)}/rotation/due`,
      query: { withinDays: options.withinDays, limit: options.limit, cursor: options.cursor },
      retryable: true,
    });
  }

  /** Creates the tenant's next DEK version; never retried (each call makes another). */
  async rotateDek(tenantId: string): Promise<DekRotated> {
    return this.#send({
      method: "POST",
      path: `/v1/tenants/${segment(tenantId)}/rotate-dek`,
      retryable: false,
    });
  }

  /** Forgets what is cached for one secret, every version and stage read of it. */
  invalidate(tenantId: string, name: string): void {
    this.#cache?.invalidate(`${tenantId}\u0000${name}\u0000`);
  }

  /** For a rule on "Secret Rotated" events: the rotated secret is read afresh on its next use. */
  onSecretRotated(event: SecretRotatedEvent): void {
    const detail = "detail" in event ? event.detail : event;
    if (typeof detail?.tenantId === "string" && typeof detail.secretName === "string") {
      this.invalidate(detail.tenantId, detail.secretName);
    }
  }

  async #read(tenantId: string, name: string, options: ReadOptions, reason: string): Promise<SecretValue> {
    return this.#send({
      method: "GET",
      path: secretPath(tenantId, name),
      query: { version: options.version, stage: options.stage },
      headers: { "x-audit-reason": reason },
      retryable: true,
    });
  }

  /** A change of one secret: what is cached of it is dropped once the change is made. */
  async #write<T>(tenantId: string, name: string, request: ApiRequest): Promise<T> {
    try {
      return await this.#send<T>(request);
    } finally {
      this.invalidate(tenantId, name);
    }
  }

  async #send<T>(request: ApiRequest): Promise<T> {
    return (await this.#transport.send<T>(request)).body;
  }
}

export function secretPath(tenantId: string, name: string): string {
  return `/v1/tenants/${segment(tenantId)}/secrets/${segment(name)}`;
}

/** The transport both clients send through: the base URL and auth checked once, here. */
export function transportFor(
  options: Pick<
    StrongboxClientOptions,
    "baseUrl" | "token" | "sigv4" | "retry" | "timeoutMs" | "fetch" | "random" | "sleep"
  >,
): Transport {
  const baseUrl = parseBaseUrl(options?.baseUrl);
  return new Transport({
    baseUrl,
    auth: authOf(options),
    ...(options.retry === undefined ? {} : { retry: options.retry }),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
    ...(options.random === undefined ? {} : { random: options.random }),
    ...(options.sleep === undefined ? {} : { sleep: options.sleep }),
  });
}

export function authOf(options: Pick<StrongboxClientOptions, "token" | "sigv4">): Auth {
  if (options.token !== undefined && options.sigv4 !== undefined) {
    throw new StrongboxConfigError("give token or sigv4, not both");
  }
  if (options.sigv4 !== undefined) return { sigv4: sigv4(options.sigv4) };
  if (typeof options.token !== "string" || !/^[!-~]{1,512}$/.test(options.token)) {
    throw new StrongboxConfigError("a token (sbx_…) or sigv4 options are needed");
  }
  return { token: options.token };
}
