import { type MintedToken, mintToken, parseToken, tokenSecretMatches } from "../../crypto/tokens.ts";
import type { AuditTarget, DenialRecorder, OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import { AuthenticationError, ConflictError, NotFoundError } from "../../domain/errors.ts";
import { canonicalToken, type ItemIntegrity, type ItemSeal } from "../../domain/item-integrity.ts";
import type { CreateTokenInput } from "../../domain/schemas.ts";
import { now } from "../../domain/time.ts";
import {
  type Page,
  type Principal,
  type Role,
  SYSTEM_SCOPE,
  type TokenFilter,
  type TokenMetadata,
  type TokenRecord,
} from "../../domain/types.ts";
import type { ResponseWrapper, WrapInfo } from "../../domain/wrapping.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";
import type { TokenRepository } from "../../storage/token-repository.ts";

export interface IssuedToken {
  readonly id: string;
  /** Shown to the caller once; only its hash is kept. */
  readonly token: string;
  readonly expiresAt: string;
}

/** The scheme is case-insensitive (RFC 9110 §11.1), and one or more spaces may follow it (RFC 6750 §2.1). */
const BEARER = /^bearer +([!-~]{1,512})$/i;

/** A token item as it may be trusted: its fields and the seal that verified over them. */
interface VerifiedToken {
  readonly record: TokenRecord;
  readonly seal: ItemSeal;
}

/** What a token lookup found: a verified token, nothing, or an item that failed its integrity check. */
type Lookup = VerifiedToken | "absent" | "failed_integrity";

export interface TokenServiceDependencies {
  readonly tokens: TokenRepository;
  /** To refuse a token for a tenant that does not exist. */
  readonly tenants: TenantRepository;
  readonly integrity: ItemIntegrity;
  readonly gate: OperationGate;
  readonly denials: DenialRecorder;
  readonly metrics: MetricsRecorder;
  readonly logger: Logger;
  /** Where a wrapped response goes (`wrapTtlSeconds`); set once the wrapper exists. */
  wrapper?: ResponseWrapper;
}

/** A write over an item that changed since it was read is tried again this often, on a fresh read. */
const CHANGED_ITEM_ATTEMPTS = 3;

export class TokenService {
  readonly #tokens: TokenRepository;
  readonly #tenants: TenantRepository;
  readonly #integrity: ItemIntegrity;
  readonly #gate: OperationGate;
  readonly #denials: DenialRecorder;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;
  #wrapper: ResponseWrapper | undefined;
  #breakGlass: { authenticate(token: string): Promise<Principal | undefined> } | undefined;

  constructor(dependencies: TokenServiceDependencies) {
    this.#tokens = dependencies.tokens;
    this.#tenants = dependencies.tenants;
    this.#integrity = dependencies.integrity;
    this.#gate = dependencies.gate;
    this.#denials = dependencies.denials;
    this.#metrics = dependencies.metrics;
    this.#logger = dependencies.logger;
    this.#wrapper = dependencies.wrapper;
  }

  /** Break-glass credentials (`sbg_…`) authenticate through here too; set once built, as the wrapper. */
  useBreakGlass(breakGlass: { authenticate(token: string): Promise<Principal | undefined> }): void {
    this.#breakGlass = breakGlass;
  }

  /** Whether a token is one of the bootstrap admin tokens ever issued here, which never approve a break-glass. */
  isBootstrap(tokenId: string): Promise<boolean> {
    return this.#tokens.isBootstrapId(tokenId);
  }

  /** The wrapper depends on the gate this service's callers share, so it is handed over once built. */
  useWrapper(wrapper: ResponseWrapper): void {
    this.#wrapper = wrapper;
  }

  /**
   * The schema has already refused an admin token with a tenant list (admins are global, so a list
   * would be a scope that is not enforced). Every tenant named must exist: no tenant is ever deleted,
   * so a token can never reach a tenant created after it, nor seed a new tenant's trail.
   */
  async create(ctx: RequestContext, input: CreateTokenInput): Promise<IssuedToken | { wrap: WrapInfo }> {
    const { role, tenants, wrapTtlSeconds } = input;
    const wrapper = wrapTtlSeconds === undefined ? undefined : this.#wrapper;
    const operation = await this.#gate.begin(ctx, "token.create", {
      detail: `role ${role} for ${tenants.join(",")}`,
    });
    const made = await operation.change(
      async () => {
        await this.#requireTenants(tenants);
        const issued = await this.issue(role, tenants, input.ttlSeconds);
        if (wrapper === undefined || wrapTtlSeconds === undefined) return { issued };
        // The new token is handed over wrapped (seed 002 §3.1): the caller gets a single-use token for it.
        const payload = JSON.stringify(issued);
        return {
          issued,
          wrap: await wrapper.wrap(
            SYSTEM_SCOPE,
            "token.create",
            ctx.principal.actor,
            payload,
            wrapTtlSeconds,
          ),
        };
      },
      ({ issued, wrap }) => ({
        detail: `issued token ${issued.id} with role ${role} for ${tenants.join(",")}${wrap === undefined ? "" : `, wrapped as ${wrap.id}`}`,
      }),
    );
    return made.wrap === undefined ? made.issued : { wrap: made.wrap };
  }

  /**
   * The access review (seed 002 §10.2): one page of the token directory, each token as its verified
   * item says, never its hash. Filters apply to the page read, so a page may hold fewer than `limit`
   * tokens while `nextCursor` is still there.
   */
  async list(
    ctx: RequestContext,
    filter: TokenFilter,
    limit: number,
    cursor?: string,
  ): Promise<Page<TokenMetadata>> {
    const operation = await this.#gate.begin(ctx, "token.list", { detail: describeFilter(filter) });
    const page = await this.#tokens.listIds(limit, cursor);
    // Asked for in one tick, so the table's reader fetches the page in one BatchGetItem.
    const found = await Promise.all(page.items.map((tokenId) => this.#lookup(tokenId)));
    const items = page.items
      .map((tokenId, index) => metadataOf(tokenId, found[index] ?? "absent"))
      .filter((item): item is TokenMetadata => item !== undefined && matches(item, filter));
    await operation.succeeded();
    return { ...page, items };
  }

  /** The caller's own token, as the review shows it: every role may ask. */
  async self(ctx: RequestContext): Promise<TokenMetadata> {
    const operation = await this.#gate.begin(ctx, "token.self");
    const mine = metadataOf(ctx.principal.actor, await this.#lookup(ctx.principal.actor));
    // The caller just authenticated with it, so only a change since then can make it vanish.
    if (mine === undefined) throw new NotFoundError("this token no longer exists");
    await operation.succeeded();
    return mine;
  }

  /**
   * The local server's bootstrap admin: the token in its file while that one is live; a new one on a
   * fresh install; otherwise (the last one was revoked, expired or lost) a new one only when the
   * operator asks with `reissue`, so a revocation is never undone by a restart. Each issuance is a
   * `token.create` record in `_system`.
   */
  async ensureLocalBootstrap(
    fileTokenId: string | undefined,
    ttlSeconds: number,
    reissue: boolean,
  ): Promise<
    | { readonly state: "active" }
    | { readonly state: "issued" | "reissued"; readonly issued: IssuedToken }
    | { readonly state: "refused"; readonly previous: string }
  > {
    const previous = (await this.#tokens.localBootstrap()) ?? fileTokenId;
    if (fileTokenId !== undefined && (await this.isActive(fileTokenId))) {
      if (previous !== fileTokenId) await this.#tokens.setLocalBootstrap(fileTokenId, now());
      return { state: "active" };
    }
    if (previous !== undefined && !reissue) return { state: "refused", previous };
    const detail =
      previous === undefined
        ? "bootstrap admin token for a fresh install"
        : `bootstrap admin token reissued on request; previous ${previous}`;
    const issued = await this.#recordedBootstrap(detail, async () => {
      const token = await this.issue("admin", ["*"], ttlSeconds);
      await this.#tokens.addBootstrapId(token.id);
      await this.#tokens.setLocalBootstrap(token.id, now());
      return token;
    });
    return { state: previous === undefined ? "issued" : "reissued", issued };
  }

  /** An issuance no caller asked for, recorded in `_system` as the service's own `token.create`. */
  #recordedBootstrap<T extends { id: string }>(detail: string, run: () => Promise<T>): Promise<T> {
    return this.#gate
      .system("token.create", { detail }, `bootstrap-${crypto.randomUUID()}`)
      .change(run, (issued) => ({ detail: `${detail}: issued token ${issued.id} with role admin for *` }));
  }

  /** Mints a token without a caller (tests, and the bootstrap paths, which record it themselves). */
  async issue(role: Role, tenants: readonly string[], ttlSeconds: number): Promise<IssuedToken> {
    const minted = mintToken();
    const createdAt = new Date();
    const expiresAt = new Date(createdAt.getTime() + ttlSeconds * 1000).toISOString();
    await this.#create({
      tokenId: minted.tokenId,
      secretHash: minted.secretHash,
      role,
      tenants,
      createdAt: createdAt.toISOString(),
      expiresAt,
    });
    return { id: minted.tokenId, token: minted.token, expiresAt };
  }

  /**
   * Makes a deployment's bootstrap admin token usable, once per token across every cold start. A token
   * that was revoked or has expired stays so: the operator replaces the secret, which gives a new token.
   */
  async ensureBootstrap(minted: MintedToken, ttlSeconds: number): Promise<"issued" | "active" | "unusable"> {
    let found = await this.#lookup(minted.tokenId);
    if (found === "absent") {
      const createdAt = new Date();
      try {
        await this.#recordedBootstrap("bootstrap admin token from its secret", async () => {
          await this.#tokens.addBootstrapId(minted.tokenId);
          await this.#create({
            tokenId: minted.tokenId,
            secretHash: minted.secretHash,
            role: "admin",
            tenants: ["*"],
            createdAt: createdAt.toISOString(),
            expiresAt: new Date(createdAt.getTime() + ttlSeconds * 1000).toISOString(),
          });
          return { id: minted.tokenId };
        });
        return "issued";
      } catch (error) {
        // Concurrent cold starts race to create the same token; the loser finds the winner's record.
        found = await this.#lookup(minted.tokenId);
        if (found === "absent") throw error;
      }
    }
    const record = typeof found === "string" ? undefined : found.record;
    const usable =
      record !== undefined &&
      tokenSecretMatches(parseToken(minted.token)?.secret ?? "", record.secretHash) &&
      record.role === "admin" &&
      isLive(record);
    return usable ? "active" : "unusable";
  }

  async revoke(ctx: RequestContext, tokenId: string): Promise<void> {
    const operation = await this.#gate.begin(ctx, "token.revoke", { detail: `revoke ${tokenId}` });
    await operation.change(async () => {
      // Read again when the write finds the item changed: a KEK re-wrap re-keying it gives it a new
      // MAC over the same content, and must not make a revocation answer that no such token exists.
      for (let attempt = 0; attempt < CHANGED_ITEM_ATTEMPTS; attempt += 1) {
        const found = await this.#lookup(tokenId);
        // An item that fails its check is no token: it is not sealed anew, revoked or not.
        if (typeof found === "string" || found.record.revokedAt !== undefined) {
          throw new NotFoundError(`no active token ${tokenId}`);
        }
        const revokedAt = now();
        const seal = await this.#integrity.seal(canonicalToken({ ...found.record, revokedAt }));
        if (await this.#tokens.revoke(tokenId, revokedAt, seal, found.seal.mac)) return;
      }
      throw new ConflictError(`token ${tokenId} kept changing while it was being revoked; retry`);
    });
  }

  async isActive(tokenId: string): Promise<boolean> {
    const found = await this.#lookup(tokenId);
    return typeof found !== "string" && isLive(found.record);
  }

  /**
   * Turns an Authorization header into a principal. Every failure gives the same answer, so the
   * response does not tell a guesser whether a token id exists, expired, or was revoked.
   */
  async authenticate(header: string | undefined, requestId: string, target: AuditTarget): Promise<Principal> {
    const presented = BEARER.exec(header ?? "")?.[1] ?? "";
    if (presented.startsWith("sbg_") && this.#breakGlass !== undefined) {
      const principal = await this.#breakGlass.authenticate(presented);
      if (principal !== undefined) return principal;
      await this.#denials.deny(
        target,
        requestId,
        { actor: "break-glass", role: "anonymous" },
        "unusable_break_glass",
      );
      throw new AuthenticationError("a valid bearer token is required");
    }
    const parsed = parseToken(presented);
    const found = parsed === undefined ? "absent" : await this.#lookup(parsed.tokenId);
    const record = typeof found === "string" ? undefined : found.record;
    const why =
      parsed === undefined
        ? "malformed_or_missing_token"
        : found === "failed_integrity"
          ? "failed_integrity"
          : record === undefined || !tokenSecretMatches(parsed.secret, record.secretHash)
            ? "unknown_token"
            : record.revokedAt !== undefined
              ? "revoked_token"
              : !isUnexpired(record)
                ? "expired_token"
                : undefined;
    if (why !== undefined || record === undefined) {
      // An id that names a stored token keeps a denial window of its own, never folded in with the
      // anonymous guesses; any other presented id is the caller's to vary, so those collapse together.
      await this.#denials.deny(
        target,
        requestId,
        { actor: parsed?.tokenId ?? "anonymous", role: "anonymous", stored: found !== "absent" },
        why,
      );
      throw new AuthenticationError("a valid bearer token is required");
    }
    return { actor: record.tokenId, role: record.role, tenants: record.tenants };
  }

  async #requireTenants(tenants: readonly string[]): Promise<void> {
    const missing = await this.#tenants.missing(tenants);
    if (missing.length > 0) {
      throw new NotFoundError(
        `tenant ${missing.join(", ")} does not exist; create it before issuing a token for it`,
      );
    }
  }

  async #create(record: TokenRecord): Promise<void> {
    await this.#tokens.create(record, await this.#integrity.seal(canonicalToken(record)));
  }

  /**
   * Reads a token item and checks its MAC. An item that fails (no MAC, a MAC that does not verify, a
   * key this service does not hold, not token-shaped, filed under another id) is treated as absent by
   * every caller, and counted and logged by the id it was looked up by, nothing else.
   */
  async #lookup(tokenId: string): Promise<Lookup> {
    const stored = await this.#tokens.get(tokenId);
    if (stored === undefined) return "absent";
    const { record, seal } = stored;
    if (
      record !== undefined &&
      seal !== undefined &&
      record.tokenId === tokenId &&
      (await this.#integrity.verify(canonicalToken(record), seal))
    ) {
      return { record, seal };
    }
    this.#metrics.increment("IntegrityFailures");
    this.#logger.warn("token item failed its integrity check; refused as unknown", { tokenId });
    return "failed_integrity";
  }
}

/** Neither revoked nor expired. Expiry is checked on every read, because dynalite has no TTL. */
function isLive(record: TokenRecord): boolean {
  return record.revokedAt === undefined && isUnexpired(record);
}

/** Fails closed: an expiry that does not parse (NaN) is past, never "not yet". */
function isUnexpired(record: TokenRecord): boolean {
  const expiresAt = Date.parse(record.expiresAt);
  return Number.isFinite(expiresAt) && expiresAt > Date.now();
}

function metadataOf(tokenId: string, found: Lookup): TokenMetadata | undefined {
  if (found === "absent") return undefined;
  if (found === "failed_integrity") return { id: tokenId, status: "failed_integrity" };
  const { record } = found;
  return {
    id: record.tokenId,
    status: record.revokedAt !== undefined ? "revoked" : isUnexpired(record) ? "active" : "expired",
    role: record.role,
    tenants: [...record.tenants],
    createdAt: record.createdAt,
    expiresAt: record.expiresAt,
    ...(record.revokedAt === undefined ? {} : { revokedAt: record.revokedAt }),
  };
}

/** A token that failed its check matches only a status filter for it: nothing else it says is trusted. */
function matches(token: TokenMetadata, filter: TokenFilter): boolean {
  if (filter.status !== undefined && token.status !== filter.status) return false;
  if (token.status === "failed_integrity") {
    return filter.role === undefined && filter.tenant === undefined && filter.expiresBefore === undefined;
  }
  if (filter.role !== undefined && token.role !== filter.role) return false;
  if (filter.tenant !== undefined && !token.tenants?.some((t) => t === filter.tenant || t === "*")) {
    return false;
  }
  if (filter.expiresBefore !== undefined) {
    const expiresAt = Date.parse(token.expiresAt ?? "");
    if (!(expiresAt <= Date.parse(filter.expiresBefore))) return false;
  }
  return true;
}

function describeFilter(filter: TokenFilter): string {
  const parts = Object.entries(filter)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${String(value)}`);
  return parts.length === 0 ? "all tokens" : parts.join(" ");
}
