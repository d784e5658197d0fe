import { type MintedToken, mintToken, parseToken, tokenSecretMatches } from "../../crypto/tokens.ts";
import type { AuditTarget, DenialRecorder, OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import { AuthenticationError, NotFoundError } from "../../domain/errors.ts";
import { canonicalToken, type ItemIntegrity, type ItemSeal } from "../../domain/item-integrity.ts";
import type { CreateTokenInput } from "../../domain/schemas.ts";
import { now } from "../../domain/time.ts";
import type { Principal, Role, TokenRecord } from "../../domain/types.ts";
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
}

export class TokenService {
  readonly #tokens: TokenRepository;
  readonly #tenants: TenantRepository;
  readonly #integrity: ItemIntegrity;
  readonly #gate: OperationGate;
  readonly #denials: DenialRecorder;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;

  constructor(dependencies: TokenServiceDependencies) {
    this.#tokens = dependencies.tokens;
    this.#tenants = dependencies.tenants;
    this.#integrity = dependencies.integrity;
    this.#gate = dependencies.gate;
    this.#denials = dependencies.denials;
    this.#metrics = dependencies.metrics;
    this.#logger = dependencies.logger;
  }

  /**
   * The schema has already refused an admin token with a tenant list (admins are global, so a list
   * would be a scope that is not enforced). Every tenant named must exist: no tenant is ever deleted,
   * so a token can never reach a tenant created after it, nor seed a new tenant's trail.
   */
  async create(ctx: RequestContext, input: CreateTokenInput): Promise<IssuedToken> {
    const { role, tenants } = input;
    const operation = await this.#gate.begin(ctx, "token.create", {
      detail: `role ${role} for ${tenants.join(",")}`,
    });
    return operation.change(
      async () => {
        await this.#requireTenants(tenants);
        return this.issue(role, tenants, input.ttlSeconds);
      },
      (issued) => ({ detail: `issued token ${issued.id} with role ${role} for ${tenants.join(",")}` }),
    );
  }

  /** Mints a token without a caller: used once, for the bootstrap admin of a fresh local install. */
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
        await this.#create({
          tokenId: minted.tokenId,
          secretHash: minted.secretHash,
          role: "admin",
          tenants: ["*"],
          createdAt: createdAt.toISOString(),
          expiresAt: new Date(createdAt.getTime() + ttlSeconds * 1000).toISOString(),
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
      const found = await this.#lookup(tokenId);
      // An item that fails its check is no token: it is not sealed anew, revoked or not.
      if (typeof found === "string" || found.record.revokedAt !== undefined) {
        throw new NotFoundError(`no active token ${tokenId}`);
      }
      const revokedAt = now();
      const seal = await this.#integrity.seal(canonicalToken({ ...found.record, revokedAt }));
      if (!(await this.#tokens.revoke(tokenId, revokedAt, seal, found.seal.mac))) {
        throw new NotFoundError(`no active token ${tokenId}`);
      }
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
    const parsed = parseToken(BEARER.exec(header ?? "")?.[1] ?? "");
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
    const named = [...new Set(tenants)].filter((tenant) => tenant !== "*");
    const found = await Promise.all(named.map((tenant) => this.#tenants.get(tenant)));
    const missing = named.filter((_tenant, index) => found[index] === undefined);
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
