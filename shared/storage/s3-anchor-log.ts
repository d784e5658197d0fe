import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { AnchorLog, ChainAnchor, MismatchedAnchor } from "../domain/audit-chain.ts";
import { StoreUnavailableError } from "../domain/errors.ts";

/** Every anchor's key starts here; the service roles' S3 permissions name this prefix and no other. */
export const ANCHOR_PREFIX = "anchors/";

/**
 * Keys hold the sequence subtracted from this, zero-padded to its 15 digits, so that S3's ascending
 * key order lists a scope's newest anchor first. 10^15 - 1 is below 2^53: every sequence up to it is exact.
 */
const INVERSION = 999_999_999_999_999;
const DIGITS = 15;

export interface S3AnchorConnection {
  readonly bucket: string;
  readonly region: string;
  /** An S3-protocol endpoint (the tests' stand-in); unset means the real service. */
  readonly endpoint?: string;
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Per attempt, connecting included, as for the table. */
  readonly requestTimeoutMs?: number;
}

/** The scope's folder: encoded so that no scope can reach into another's (`a/b` is `a%2Fb`). */
const scopePrefix = (scope: string) => `${ANCHOR_PREFIX}${encodeURIComponent(scope)}/`;

export function anchorKey(scope: string, sequence: number): string {
  if (!Number.isSafeInteger(sequence) || sequence < 1 || sequence > INVERSION) {
    throw new RangeError(`an anchor's sequence must be an integer from 1 to ${INVERSION}`);
  }
  return `${scopePrefix(scope)}${String(INVERSION - sequence).padStart(DIGITS, "0")}.json`;
}

/** The sequence a key names, or undefined when the key is not one this log writes. */
function sequenceOf(key: string, scope: string): number | undefined {
  const name = key.slice(scopePrefix(scope).length);
  const match = /^([0-9]{15})\.json$/.exec(name);
  if (!key.startsWith(scopePrefix(scope)) || match === null) return undefined;
  const sequence = INVERSION - Number(match[1]);
  return sequence >= 1 ? sequence : undefined;
}

function isAnchor(value: unknown): value is ChainAnchor {
  const v = value as Partial<ChainAnchor> | null;
  return (
    typeof v === "object" &&
    v !== null &&
    typeof v.scope === "string" &&
    Number.isSafeInteger(v.sequence) &&
    typeof v.hash === "string" &&
    v.hash !== "" &&
    typeof v.time === "string"
  );
}

const statusOf = (error: unknown) =>
  (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

/**
 * Chain anchors in an S3 bucket with Object Lock, one object per anchor, named by scope and sequence
 * (`anchors/<scope>/<10^15-1-sequence>.json`), so a scope's newest anchor is the first key listed. Every
 * put is conditional (`If-None-Match: *`), which the bucket policy requires, so an anchor once written
 * is never replaced; the service roles hold no delete or retention permission (infra/stacks/data-stack.ts).
 */
export class S3AnchorLog implements AnchorLog {
  readonly #client: S3Client;
  readonly #bucket: string;

  constructor(connection: S3AnchorConnection) {
    this.#bucket = connection.bucket;
    const timeout = connection.requestTimeoutMs;
    this.#client = new S3Client({
      region: connection.region,
      maxAttempts: 3,
      ...(timeout === undefined
        ? {}
        : {
            requestHandler: {
              requestTimeout: timeout,
              connectionTimeout: timeout,
              throwOnRequestTimeout: true,
            },
          }),
      // A loopback endpoint has no bucket subdomains.
      ...(connection.endpoint === undefined ? {} : { endpoint: connection.endpoint, forcePathStyle: true }),
      ...(connection.credentials === undefined ? {} : { credentials: connection.credentials }),
    });
  }

  /**
   * Writes the anchor unless its key exists. An existing anchor that says the same (a redelivered batch,
   * another sequencer instance) is success; one that says otherwise is refused, never overwritten.
   */
  async append(anchor: ChainAnchor): Promise<void> {
    const key = anchorKey(anchor.scope, anchor.sequence);
    try {
      await this.#client.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: key,
          Body: JSON.stringify(anchor),
          ContentType: "application/json",
          IfNoneMatch: "*",
        }),
      );
      return;
    } catch (error) {
      // 412: the key exists; 409: a conditional write to it raced this one.
      const status = statusOf(error);
      if (status !== 412 && status !== 409) throw unavailable("PutObject", error);
    }
    const existing = await this.#read(key);
    const same =
      isAnchor(existing) &&
      existing.scope === anchor.scope &&
      existing.sequence === anchor.sequence &&
      existing.hash === anchor.hash;
    if (same) return;
    throw new StoreUnavailableError(
      `audit anchor ${anchor.scope}:${anchor.sequence} already exists with other content: refused, not overwritten`,
    );
  }

  async latest(scope: string): Promise<ChainAnchor | MismatchedAnchor | undefined> {
    const listed = await this.#send("ListObjectsV2", () =>
      this.#client.send(
        new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: scopePrefix(scope), MaxKeys: 1 }),
      ),
    );
    const key = listed.Contents?.[0]?.Key;
    if (key === undefined) return undefined;
    const sequence = sequenceOf(key, scope);
    // A key this log never writes sorts first only when someone else wrote it: it claims a head past any.
    if (sequence === undefined) return { scope, sequence: Number.MAX_SAFE_INTEGER, mismatch: true };
    const body = await this.#read(key);
    if (!isAnchor(body) || body.scope !== scope || body.sequence !== sequence) {
      return { scope, sequence, mismatch: true };
    }
    return { scope, sequence, hash: body.hash, time: body.time };
  }

  async scopes(): Promise<string[]> {
    const scopes: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.#send("ListObjectsV2", () =>
        this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: ANCHOR_PREFIX,
            Delimiter: "/",
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        ),
      );
      for (const { Prefix: prefix } of page.CommonPrefixes ?? []) {
        if (prefix === undefined) continue;
        try {
          scopes.push(decodeURIComponent(prefix.slice(ANCHOR_PREFIX.length, -1)));
        } catch {
          // A folder whose name is no encoding this log writes holds no anchor it wrote.
        }
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return scopes;
  }

  /** The object's body as JSON; what does not parse comes back as undefined. */
  async #read(key: string): Promise<unknown> {
    const object = await this.#send("GetObject", () =>
      this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key })),
    );
    const text = (await object.Body?.transformToString("utf8")) ?? "";
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  }

  async #send<T>(operation: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw unavailable(operation, error);
    }
  }
}

/** As for the table: the SDK's error, with its request details, stays out of what is thrown upward. */
function unavailable(operation: string, error: unknown): StoreUnavailableError {
  const name = error instanceof Error ? error.name : "unknown error";
  return new StoreUnavailableError(`S3 ${operation} failed: ${name}`, { cause: error });
}
