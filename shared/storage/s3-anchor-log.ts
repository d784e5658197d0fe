import {
  GetObjectCommand,
  ListObjectVersionsCommand,
  type ListObjectVersionsCommandOutput,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
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

/**
 * Entries per page of a scope's versions. The newest anchor and the key after it fit in one page when
 * nothing is hidden; a page of a few keys keeps each verify's listing small however many anchors exist.
 */
const VERSIONS_PAGE = 8;
/** Past this many keys hidden behind delete markers, the listing stops: the mismatch is already shown. */
const HIDDEN_KEYS_READ = 1000;

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

/** The sequence a key claims, a key this log never writes claiming a head past any. */
const claimed = (key: string, scope: string) => sequenceOf(key, scope) ?? Number.MAX_SAFE_INTEGER;

interface KeyVersions {
  readonly key: string;
  /** Newest first. */
  readonly versions: readonly string[];
  readonly markers: number;
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
 * The reads do not trust that policy to stand: see `latest`.
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

  /**
   * Read through the versions, not the current objects: a lifecycle rule or a delete puts delete markers
   * over locked anchors, and a put without the condition (once the bucket policy is gone) adds a version
   * over one, and Object Lock stops neither. Either leaves the newest anchor's key with more than its one
   * version, or newer keys with nothing but delete markers; such an anchor is reported as a mismatch,
   * carrying what the key's oldest version (the one its conditional put wrote) says.
   */
  async latest(scope: string): Promise<ChainAnchor | MismatchedAnchor | undefined> {
    const keys = await this.#newestKeys(scope);
    const newest = keys.find((key) => key.versions.length > 0);
    const hidden = keys.filter((key) => key.versions.length === 0).map((key) => claimed(key.key, scope));
    if (newest === undefined) {
      return hidden.length === 0 ? undefined : { scope, sequence: Math.max(...hidden), mismatch: true };
    }
    const sequence = sequenceOf(newest.key, scope);
    // A key this log never writes sorts first only when someone else wrote it: it claims a head past any.
    if (sequence === undefined) return { scope, sequence: Number.MAX_SAFE_INTEGER, mismatch: true };
    const claim = Math.max(sequence, ...hidden);
    const body = await this.#read(newest.key, newest.versions.at(-1));
    if (!isAnchor(body) || body.scope !== scope || body.sequence !== sequence) {
      return { scope, sequence: claim, mismatch: true };
    }
    if (newest.versions.length > 1 || newest.markers > 0 || hidden.length > 0) {
      return { scope, sequence: claim, mismatch: true, original: { sequence, hash: body.hash } };
    }
    return { scope, sequence, hash: body.hash, time: body.time };
  }

  /**
   * The scope's keys in key order, each with its version ids (newest first) and delete-marker count, up
   * to and including the first key that has a version, and until a later key shows that one complete.
   */
  async #newestKeys(scope: string): Promise<KeyVersions[]> {
    const keys = new Map<string, { versions: string[]; markers: number }>();
    const entry = (key: string) => {
      let found = keys.get(key);
      if (found === undefined) {
        found = { versions: [], markers: 0 };
        keys.set(key, found);
      }
      return found;
    };
    let marker: { KeyMarker?: string; VersionIdMarker?: string } = {};
    for (;;) {
      const page: ListObjectVersionsCommandOutput = await this.#send("ListObjectVersions", () =>
        this.#client.send(
          new ListObjectVersionsCommand({
            Bucket: this.#bucket,
            Prefix: scopePrefix(scope),
            MaxKeys: VERSIONS_PAGE,
            ...marker,
          }),
        ),
      );
      // Within a key S3 lists the newest version first, so each key's ids stay newest first across pages.
      for (const version of page.Versions ?? []) {
        if (version.Key !== undefined && version.VersionId !== undefined) {
          entry(version.Key).versions.push(version.VersionId);
        }
      }
      for (const deleted of page.DeleteMarkers ?? [])
        if (deleted.Key !== undefined) entry(deleted.Key).markers += 1;
      const ordered = [...keys.keys()].sort();
      const newest = ordered.findIndex((key) => (keys.get(key)?.versions.length ?? 0) > 0);
      const done =
        page.IsTruncated !== true ||
        page.NextKeyMarker === undefined ||
        (newest !== -1 && newest < ordered.length - 1) ||
        (newest === -1 && ordered.length > HIDDEN_KEYS_READ);
      if (done) {
        const through = newest === -1 ? ordered : ordered.slice(0, newest + 1);
        return through.map((key) => ({ key, ...(keys.get(key) ?? { versions: [], markers: 0 }) }));
      }
      marker = {
        ...(page.NextKeyMarker === undefined ? {} : { KeyMarker: page.NextKeyMarker }),
        ...(page.NextVersionIdMarker === undefined ? {} : { VersionIdMarker: page.NextVersionIdMarker }),
      };
    }
  }

  /**
   * Every scope with a key under the prefix, a scope whose anchors are all behind delete markers
   * included: the versions listing folds a scope's keys into one common prefix whatever they hold.
   */
  async scopes(): Promise<string[]> {
    const scopes: string[] = [];
    let marker: { KeyMarker?: string; VersionIdMarker?: string } | undefined = {};
    while (marker !== undefined) {
      const from: { KeyMarker?: string; VersionIdMarker?: string } = marker;
      const page: ListObjectVersionsCommandOutput = await this.#send("ListObjectVersions", () =>
        this.#client.send(
          new ListObjectVersionsCommand({
            Bucket: this.#bucket,
            Prefix: ANCHOR_PREFIX,
            Delimiter: "/",
            ...from,
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
      marker =
        page.IsTruncated === true && page.NextKeyMarker !== undefined
          ? {
              KeyMarker: page.NextKeyMarker,
              ...(page.NextVersionIdMarker === undefined
                ? {}
                : { VersionIdMarker: page.NextVersionIdMarker }),
            }
          : undefined;
    }
    return scopes;
  }

  /** The object's body (its current version, or the one named) as JSON; what does not parse is undefined. */
  async #read(key: string, versionId?: string): Promise<unknown> {
    const object = await this.#send("GetObject", () =>
      this.#client.send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key: key,
          ...(versionId === undefined ? {} : { VersionId: versionId }),
        }),
      ),
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
