import { type MintedToken, mintToken, parseToken, tokenSecretMatches } from "../../crypto/tokens.ts";
import type { AuditTarget, DenialRecorder, OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import { AuthenticationError, NotFoundError } from "../../domain/errors.ts";
import type { CreateTokenInput } from "../../domain/schemas.ts";
import { now } from "../../domain/time.ts";
import type { Principal, Role } from "../../domain/types.ts";
import type { TokenRepository } from "../../storage/token-repository.ts";

export interface IssuedToken {
  readonly id: string;
  /** Shown to the caller once; only its hash is kept. */
  readonly token: string;
  readonly expiresAt: string;
}

const BEARER = /^Bearer ([!-~]{1,512})$/;

export class TokenService {
  readonly #tokens: TokenRepository;
  readonly #gate: OperationGate;
  readonly #denials: DenialRecorder;

  constructor(tokens: TokenRepository, gate: OperationGate, denials: DenialRecorder) {
    this.#tokens = tokens;
    this.#gate = gate;
    this.#denials = denials;
  }

  async create(ctx: RequestContext, input: CreateTokenInput): Promise<IssuedToken> {
    const tenants = input.role === "admin" ? ["*"] : input.tenants;
    const operation = await this.#gate.begin(ctx, "token.create", {
      detail: `role ${input.role} for ${tenants.join(",")}`,
    });
    return operation.change(
      () => this.issue(input.role, tenants, input.ttlSeconds),
      (issued) => ({ detail: `issued token ${issued.id} with role ${input.role} for ${tenants.join(",")}` }),
    );
  }

  /** Mints a token without a caller: used once, for the bootstrap admin of a fresh local install. */
  async issue(role: Role, tenants: readonly string[], ttlSeconds: number): Promise<IssuedToken> {
    const minted = mintToken();
    const createdAt = new Date();
    const expiresAt = new Date(createdAt.getTime() + ttlSeconds * 1000).toISOString();
    await this.#tokens.create({
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
    const existing = await this.#tokens.get(minted.tokenId);
    if (existing === undefined) {
      const createdAt = new Date();
      try {
        await this.#tokens.create({
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
        if ((await this.#tokens.get(minted.tokenId)) === undefined) throw error;
      }
    }
    const record = existing ?? (await this.#tokens.get(minted.tokenId));
    const usable =
      record !== undefined &&
      tokenSecretMatches(parseToken(minted.token)?.secret ?? "", record.secretHash) &&
      record.role === "admin" &&
      record.revokedAt === undefined &&
      Date.parse(record.expiresAt) > Date.now();
    return usable ? "active" : "unusable";
  }

  async revoke(ctx: RequestContext, tokenId: string): Promise<void> {
    const operation = await this.#gate.begin(ctx, "token.revoke", { detail: `revoke ${tokenId}` });
    await operation.change(async () => {
      if (!(await this.#tokens.revoke(tokenId, now()))) throw new NotFoundError(`no active token ${tokenId}`);
    });
  }

  async isActive(tokenId: string): Promise<boolean> {
    const record = await this.#tokens.get(tokenId);
    return (
      record !== undefined && record.revokedAt === undefined && Date.parse(record.expiresAt) > Date.now()
    );
  }

  /**
   * Turns an Authorization header into a principal. Every failure gives the same answer, so the
   * response does not tell a guesser whether a token id exists, expired, or was revoked.
   */
  async authenticate(header: string | undefined, requestId: string, target: AuditTarget): Promise<Principal> {
    const parsed = parseToken(BEARER.exec(header ?? "")?.[1] ?? "");
    const record = parsed === undefined ? undefined : await this.#tokens.get(parsed.tokenId);
    const why =
      parsed === undefined
        ? "malformed_or_missing_token"
        : record === undefined || !tokenSecretMatches(parsed.secret, record.secretHash)
          ? "unknown_token"
          : record.revokedAt !== undefined
            ? "revoked_token"
            : Date.parse(record.expiresAt) <= Date.now()
              ? "expired_token"
              : undefined;
    if (why !== undefined || record === undefined) {
      await this.#denials.deny(
        target,
        requestId,
        { actor: parsed?.tokenId ?? "anonymous", role: "anonymous" },
        why,
      );
      throw new AuthenticationError("a valid bearer token is required");
    }
    return { tokenId: record.tokenId, role: record.role, tenants: record.tenants };
  }
}
