import { createHash, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";

/** Recognisable in leaked-credential scans and logs, the way `ghp_` and `xoxb-` are. */
export const TOKEN_PREFIX = "sbx_";
const ID_BYTES = 16;
const SECRET_BYTES = 32;
const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

function base32(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

export interface MintedToken {
  readonly tokenId: string;
  /** The bearer credential: shown once to the caller, never stored. */
  readonly token: string;
  readonly secretHash: Uint8Array;
}

export interface ParsedToken {
  readonly tokenId: string;
  readonly secret: string;
}

const TOKEN_PATTERN = /^sbx_([a-z2-7]{26})_([0-9a-f]{64})$/;

/** The secret half has 256 bits of entropy, so a plain SHA-256 is a sufficient one-way store. */
export function hashTokenSecret(secret: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(secret).digest());
}

export function mintToken(): MintedToken {
  const tokenId = base32(randomBytes(ID_BYTES));
  const secret = randomBytes(SECRET_BYTES).toString("hex");
  return { tokenId, token: `${TOKEN_PREFIX}${tokenId}_${secret}`, secretHash: hashTokenSecret(secret) };
}

export function parseToken(token: string): ParsedToken | undefined {
  const match = TOKEN_PATTERN.exec(token);
  if (match?.[1] === undefined || match[2] === undefined) return undefined;
  return { tokenId: match[1], secret: match[2] };
}

export function tokenSecretMatches(secret: string, storedHash: Uint8Array): boolean {
  const candidate = hashTokenSecret(secret);
  return candidate.byteLength === storedHash.byteLength && timingSafeEqual(candidate, storedHash);
}

/** A random identifier for records that need uniqueness, not secrecy. */
export function randomId(): string {
  return randomUUID();
}

const BOOTSTRAP_SECRET_PATTERN = /^[0-9a-f]{64}$/;

/**
 * The bootstrap admin token of a deployment whose secret half is kept in Secrets Manager. Secrets Manager
 * can generate 64 hex characters but not the `sbx_<id>_` frame, so the id is derived one-way from the
 * secret: a new secret value gives a new token id. Undefined when the value is not 64 lowercase hex.
 */
export function bootstrapToken(secret: string): MintedToken | undefined {
  if (!BOOTSTRAP_SECRET_PATTERN.test(secret)) return undefined;
  const idBytes = createHash("sha256")
    .update(`strongbox bootstrap token id\0${secret}`)
    .digest()
    .subarray(0, ID_BYTES);
  const tokenId = base32(idBytes);
  return { tokenId, token: `${TOKEN_PREFIX}${tokenId}_${secret}`, secretHash: hashTokenSecret(secret) };
}

/** Response-wrapping tokens (Vault's semantics): single-use, and told apart from bearer tokens at a glance. */
export const WRAP_PREFIX = "sbw_";
const WRAP_PATTERN = /^sbw_([a-z2-7]{26})_([0-9a-f]{64})$/;

export interface MintedWrappingToken {
  readonly wrapId: string;
  /** Handed to the caller instead of the payload; only its hash is kept. */
  readonly token: string;
  readonly secretHash: Uint8Array;
}

export function mintWrappingToken(): MintedWrappingToken {
  const wrapId = base32(randomBytes(ID_BYTES));
  const secret = randomBytes(SECRET_BYTES).toString("hex");
  return { wrapId, token: `${WRAP_PREFIX}${wrapId}_${secret}`, secretHash: hashTokenSecret(secret) };
}

export function parseWrappingToken(token: string): { wrapId: string; secret: string } | undefined {
  const match = WRAP_PATTERN.exec(token);
  if (match?.[1] === undefined || match[2] === undefined) return undefined;
  return { wrapId: match[1], secret: match[2] };
}

/** Break-glass credentials: short-lived, one tenant, and told apart from ordinary tokens at a glance. */
const BREAK_GLASS_PATTERN = /^sbg_([a-z2-7]{26})_([0-9a-f]{64})$/;

export function mintBreakGlassCredential(requestId: string): { token: string; secretHash: Uint8Array } {
  const secret = randomBytes(SECRET_BYTES).toString("hex");
  return { token: `sbg_${requestId}_${secret}`, secretHash: hashTokenSecret(secret) };
}

export function newBreakGlassId(): string {
  return base32(randomBytes(ID_BYTES));
}

export function parseBreakGlassCredential(token: string): { requestId: string; secret: string } | undefined {
  const match = BREAK_GLASS_PATTERN.exec(token);
  if (match?.[1] === undefined || match[2] === undefined) return undefined;
  return { requestId: match[1], secret: match[2] };
}
