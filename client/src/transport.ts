import {
  errorFromAnswer,
  StrongboxConfigError,
  StrongboxNetworkError,
  UnexpectedResponseError,
} from "./errors.ts";
import type { Signer } from "./sigv4.ts";

export interface RetryOptions {
  /** Attempts in all, the first included; 3 unless given. */
  readonly maxAttempts?: number;
  /** The cap of the first backoff; each next one doubles, up to `maxDelayMs`. 50 ms and 2 s unless given. */
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
}

export type Auth =
  | { readonly token: string }
  /** SigV4 for an HTTP API behind IAM authorization (execute-api), signed per attempt. */
  | { readonly sigv4: Signer };

export interface TransportOptions {
  readonly baseUrl: URL;
  readonly auth: Auth;
  readonly retry?: RetryOptions;
  /** Per attempt; 10 s unless given. */
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
  /** For tests: the jitter's random source and the sleep. */
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface ApiRequest {
  readonly method: "GET" | "PUT" | "POST" | "DELETE";
  /** Below the base URL, each segment already encoded. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string | number | undefined>>;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: unknown;
  /** Answer with the body as text (an export's JSON lines) rather than parsed JSON. */
  readonly raw?: boolean;
  /**
   * May this request be sent again after a 429, a 503 or a lost connection? Reads may; a write only
   * when it carries a clientRequestToken, which makes its repetition a no-op on the server.
   */
  readonly retryable: boolean;
}

export interface ApiAnswer<T> {
  /** A 2xx: some routes answer 200 when done and 202 when the work waits on something else. */
  readonly status: number;
  readonly body: T;
  readonly requestId: string | undefined;
}

/** Statuses that say "not now" rather than "no": throttled or unavailable. */
const RETRYABLE_STATUS = new Set([429, 503]);

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Sends requests with their auth, retrying what may be retried with full jitter, up to a bound. */
export class Transport {
  readonly #base: URL;
  readonly #auth: Auth;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #random: () => number;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(options: TransportOptions) {
    this.#base = options.baseUrl;
    this.#auth = options.auth;
    this.#maxAttempts = Math.max(1, Math.floor(options.retry?.maxAttempts ?? 3));
    this.#baseDelayMs = options.retry?.baseDelayMs ?? 50;
    this.#maxDelayMs = options.retry?.maxDelayMs ?? 2_000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? delay;
  }

  async send<T>(request: ApiRequest): Promise<ApiAnswer<T>> {
    const url = this.#url(request);
    for (let attempt = 1; ; attempt += 1) {
      const last = !request.retryable || attempt >= this.#maxAttempts;
      let response: Response;
      try {
        response = await this.#fetch(await this.#prepare(url, request));
      } catch (error) {
        if (error instanceof StrongboxConfigError) throw error;
        if (last) {
          throw new StrongboxNetworkError(
            `no answer from Strongbox after ${attempt} attempt(s)`,
            attempt,
            error,
          );
        }
        await this.#backoff(attempt, undefined);
        continue;
      }
      const requestId = response.headers.get("x-request-id") ?? undefined;
      if (response.ok) {
        return {
          status: response.status,
          body: (request.raw === true ? await response.text() : await readBody(response)) as T,
          requestId,
        };
      }
      const body = await readBody(response).catch(() => undefined);
      if (!last && RETRYABLE_STATUS.has(response.status)) {
        await this.#backoff(attempt, response.headers.get("retry-after"));
        continue;
      }
      throw errorFromAnswer(response.status, body, requestId);
    }
  }

  /** Full jitter: a uniform wait up to the exponential cap, at least what Retry-After asks (capped too). */
  async #backoff(attempt: number, retryAfter: string | null | undefined): Promise<void> {
    const cap = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (attempt - 1));
    const asked = retryAfter != null && /^\d{1,4}$/.test(retryAfter) ? Number(retryAfter) * 1000 : 0;
    await this.#sleep(Math.max(this.#random() * cap, Math.min(asked, this.#maxDelayMs)));
  }

  #url(request: ApiRequest): URL {
    const url = new URL(this.#base.href.replace(/\/?$/, "") + request.path);
    for (const [name, value] of Object.entries(request.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    return url;
  }

  async #prepare(url: URL, request: ApiRequest): Promise<Request> {
    const headers = new Headers(request.headers);
    const body = request.body === undefined ? undefined : JSON.stringify(request.body);
    if (body !== undefined) headers.set("content-type", "application/json");
    if ("token" in this.#auth) headers.set("authorization", `Bearer ${this.#auth.token}`);
    const prepared = new Request(url, {
      method: request.method,
      headers,
      ...(body === undefined ? {} : { body }),
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    return "sigv4" in this.#auth ? this.#auth.sigv4(prepared) : prepared;
  }
}

async function readBody(response: Response): Promise<unknown> {
  if (response.status === 204) return undefined;
  const text = await response.text();
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    if (response.ok) {
      throw new UnexpectedResponseError({
        status: response.status,
        message: "the answer is not JSON",
        requestId: response.headers.get("x-request-id") ?? undefined,
      });
    }
    return undefined;
  }
}
