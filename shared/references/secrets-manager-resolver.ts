import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { ReferenceDeniedError, ReferenceNotFoundError, ReferenceUnavailableError } from "../domain/errors.ts";
import {
  type CredentialRef,
  describeReference,
  type ReferenceResolver,
  type ResolvedReference,
} from "../domain/references.ts";

export interface SecretsManagerResolverOptions {
  readonly region: string;
  /** Only for pointing the SDK at a Secrets Manager-protocol test endpoint. */
  readonly endpoint?: string;
  /** How long a resolved value may be reused; never past the referenced secret's next rotation. */
  readonly cacheMs: number;
  /** Entries kept at most; the oldest goes first. */
  readonly maxEntries?: number;
}

interface Entry {
  readonly resolved: ResolvedReference;
  readonly expiresAt: number;
}

const DEFAULT_MAX_ENTRIES = 1000;

/** Maps Secrets Manager's errors to typed ones that name the reference; its messages are not passed on. */
function mapError(ref: CredentialRef, error: unknown): Error {
  const name = error instanceof Error ? error.name : "";
  const named = describeReference(ref.uri);
  if (name === "ResourceNotFoundException") {
    return new ReferenceNotFoundError(
      `reference ${named}: Secrets Manager has no such secret or version stage`,
    );
  }
  if (name === "AccessDeniedException" || name === "AccessDenied") {
    return new ReferenceDeniedError(`reference ${named}: the service's role may not read that secret`);
  }
  if (name === "DecryptionFailure") {
    return new ReferenceDeniedError(`reference ${named}: Secrets Manager could not decrypt it for this role`);
  }
  return new ReferenceUnavailableError(
    `reference ${named}: Secrets Manager did not answer (${name || "error"})`,
  );
}

/**
 * The Secrets Manager side of `CredentialRef`s: the only holder of the Secrets Manager client for
 * references. A resolved value is kept in memory for at most `cacheMs`, and never past the referenced
 * secret's next rotation date, so a rotation in Secrets Manager is seen at once after it is due.
 */
export class SecretsManagerResolver implements ReferenceResolver {
  readonly #client: SecretsManagerClient;
  readonly #cacheMs: number;
  readonly #maxEntries: number;
  readonly #cache = new Map<string, Entry>();

  constructor(options: SecretsManagerResolverOptions) {
    this.#client = new SecretsManagerClient({
      region: options.region,
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    });
    this.#cacheMs = options.cacheMs;
    this.#maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  }

  async resolve(ref: CredentialRef): Promise<ResolvedReference> {
    const cached = this.#cache.get(ref.uri);
    if (cached !== undefined && cached.expiresAt > Date.now()) return cached.resolved;
    this.#cache.delete(ref.uri);
    const [secret, rotation] = await Promise.all([
      this.#client
        .send(
          new GetSecretValueCommand({
            SecretId: ref.secretId,
            ...(ref.versionStage === undefined ? {} : { VersionStage: ref.versionStage }),
          }),
        )
        .catch((error: unknown) => {
          throw mapError(ref, error);
        }),
      this.describe(ref),
    ]);
    if (typeof secret.SecretString !== "string") {
      throw new ReferenceNotFoundError(`reference ${describeReference(ref.uri)}: the secret holds no string`);
    }
    const value = ref.jsonKey === undefined ? secret.SecretString : jsonField(ref, secret.SecretString);
    const resolved: ResolvedReference = {
      value,
      ...(rotation.rotationDueAt === undefined ? {} : { rotationDueAt: rotation.rotationDueAt }),
    };
    const until = Math.min(
      Date.now() + this.#cacheMs,
      rotation.rotationDueAt === undefined ? Number.POSITIVE_INFINITY : Date.parse(rotation.rotationDueAt),
    );
    if (until > Date.now()) {
      if (this.#cache.size >= this.#maxEntries) {
        const oldest = this.#cache.keys().next();
        if (oldest.done !== true) this.#cache.delete(oldest.value);
      }
      this.#cache.set(ref.uri, { resolved, expiresAt: until });
    }
    return resolved;
  }

  async describe(ref: CredentialRef): Promise<{ rotationDueAt?: string }> {
    const described = await this.#client
      .send(new DescribeSecretCommand({ SecretId: ref.secretId }))
      .catch((error: unknown) => {
        throw mapError(ref, error);
      });
    const next = described.NextRotationDate;
    return next instanceof Date && !Number.isNaN(next.getTime()) ? { rotationDueAt: next.toISOString() } : {};
  }
}

/** The `#jsonKey` of a JSON object secret, as a string; a missing key or a non-object is the reference's fault. */
function jsonField(ref: CredentialRef, text: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const named = describeReference(ref.uri);
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ReferenceNotFoundError(
      `reference ${named}: the secret is not a JSON object, so it has no #${ref.jsonKey}`,
    );
  }
  const field = (parsed as Record<string, unknown>)[ref.jsonKey as string];
  if (field === undefined)
    throw new ReferenceNotFoundError(`reference ${named}: the secret has no key ${ref.jsonKey}`);
  return typeof field === "string" ? field : JSON.stringify(field);
}
