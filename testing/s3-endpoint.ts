/**
 * A test double for S3, for the audit anchor log: no S3 runs here, and the fake S3 servers on npm
 * (s3rver 3.7.1, from 2021) predate S3's conditional writes, so they would overwrite an anchor that
 * `If-None-Match: *` must protect. This loopback server speaks just the REST calls the real
 * `@aws-sdk/client-s3` makes for S3AnchorLog, path-style (`/<bucket>/<key>`), on a bucket that is
 * always versioned, as the anchor bucket is: PutObject (a new version each time; `If-None-Match: *`
 * refused with 412 PreconditionFailed while the key has a current object, and let through over a
 * delete marker, as S3 does), GetObject (the current version, or one by `versionId`), DeleteObject
 * (without a version: a delete marker; with one: that version gone), ListObjectsV2 (current objects)
 * and ListObjectVersions (versions and delete markers, newest first within a key), both with prefix,
 * delimiter, max-keys and continuation. Object Lock, lifecycle rules and bucket policies are not
 * modelled: what a role may do is the IAM contract's to decide (testing/iam/), and what is stored here
 * can be changed at will by `putRaw` and `expire`, as an account administrator can in AWS. Signatures
 * are not checked.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface S3Endpoint {
  /** `http://127.0.0.1:PORT`, for `new S3Client({ endpoint, forcePathStyle: true })`. */
  readonly endpoint: string;
  /** Requests received per operation (`PutObject`, `GetObject`, `ListObjectVersions`, ...), refused ones included. */
  readonly calls: Record<string, number>;
  /** The current objects of a bucket, by key, as text: a key whose newest version is a delete marker is not here. */
  objects(bucket: string): Map<string, string>;
  /** Every version of a key, newest first; a delete marker has no body. */
  versions(bucket: string, key: string): readonly StoredVersion[];
  /** Adds a version whatever is there already: an unconditional put (a forger's write), for tests. */
  putRaw(bucket: string, key: string, body: string): void;
  /** Adds a delete marker over the current version, as a lifecycle `Expiration` rule does. */
  expire(bucket: string, key: string): void;
  close(): Promise<void>;
}

export interface StoredVersion {
  readonly versionId: string;
  /** Undefined for a delete marker. */
  readonly body?: string;
  readonly lastModified: string;
}

const xmlEscape = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function error(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { "content-type": "application/xml" });
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>`,
  );
}

/** A key's versions, newest last: S3 answers newest first. */
type Versions = StoredVersion[];

const etagOf = (body: string) => `"${createHash("md5").update(body).digest("hex")}"`;

export async function startS3Endpoint(): Promise<S3Endpoint> {
  const buckets = new Map<string, Map<string, Versions>>();
  const calls: Record<string, number> = {};
  let versionCount = 0;
  const bucketOf = (name: string) => {
    let bucket = buckets.get(name);
    if (bucket === undefined) {
      bucket = new Map();
      buckets.set(name, bucket);
    }
    return bucket;
  };
  const count = (operation: string) => {
    calls[operation] = (calls[operation] ?? 0) + 1;
  };
  const current = (name: string, key: string) => bucketOf(name).get(key)?.at(-1);
  /** Version ids are opaque to clients; these sort by age only to make a failure easier to read. */
  const addVersion = (name: string, key: string, body: string | undefined): StoredVersion => {
    versionCount += 1;
    const version = {
      versionId: `v${String(versionCount).padStart(10, "0")}`,
      ...(body === undefined ? {} : { body }),
      lastModified: new Date().toISOString(),
    };
    const bucket = bucketOf(name);
    bucket.set(key, [...(bucket.get(key) ?? []), version]);
    return version;
  };

  /**
   * What a listing holds, in S3's order (ascending UTF-8 byte order of keys, which for these ASCII keys
   * is string order, and newest first within a key): a common prefix counts once, where its first key sorts.
   */
  const listing = <T>(
    name: string,
    prefix: string,
    delimiter: string,
    entriesOf: (key: string, versions: Versions) => T[],
  ) => {
    const keys = [...bucketOf(name).keys()].filter((key) => key.startsWith(prefix)).sort();
    const entries: ({ key: string; common: true } | { key: string; common: false; entry: T })[] = [];
    for (const key of keys) {
      const own = entriesOf(key, bucketOf(name).get(key) ?? []);
      if (own.length === 0) continue;
      const rest = key.slice(prefix.length);
      const cut = delimiter === "" ? -1 : rest.indexOf(delimiter);
      if (cut !== -1) {
        const common = prefix + rest.slice(0, cut + delimiter.length);
        if (entries.at(-1)?.key !== common) entries.push({ key: common, common: true });
      } else {
        for (const entry of own) entries.push({ key, common: false, entry });
      }
    }
    return entries;
  };
  const maxKeysOf = (query: URLSearchParams) => Math.min(Number(query.get("max-keys") ?? 1000), 1000);
  const reply = (res: ServerResponse, parts: string[]) => {
    res.writeHead(200, { "content-type": "application/xml" });
    res.end(parts.join(""));
  };
  const xml = '<?xml version="1.0" encoding="UTF-8"?>';
  const ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';
  const commonPrefix = (key: string) => `<CommonPrefixes><Prefix>${xmlEscape(key)}</Prefix></CommonPrefixes>`;

  const listObjects = (res: ServerResponse, name: string, query: URLSearchParams) => {
    count("ListObjectsV2");
    const prefix = query.get("prefix") ?? "";
    const delimiter = query.get("delimiter") ?? "";
    const maxKeys = maxKeysOf(query);
    const token = query.get("continuation-token");
    const after = token === null ? (query.get("start-after") ?? "") : Buffer.from(token, "base64").toString();
    const entries = listing(name, prefix, delimiter, (_, versions) => {
      const latest = versions.at(-1);
      return latest?.body === undefined ? [] : [latest.body];
    });
    const remaining = entries.filter((entry) => entry.key > after);
    const page = remaining.slice(0, maxKeys);
    const truncated = remaining.length > page.length;
    reply(res, [
      `${xml}<ListBucketResult ${ns}>`,
      `<Name>${xmlEscape(name)}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${page.length}</KeyCount>`,
      `<MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${truncated}</IsTruncated>`,
      ...(delimiter === "" ? [] : [`<Delimiter>${xmlEscape(delimiter)}</Delimiter>`]),
      ...page.map((entry) =>
        entry.common
          ? commonPrefix(entry.key)
          : `<Contents><Key>${xmlEscape(entry.key)}</Key><Size>${Buffer.byteLength(entry.entry)}</Size></Contents>`,
      ),
      ...(truncated
        ? [
            `<NextContinuationToken>${Buffer.from(page.at(-1)?.key ?? "").toString("base64")}</NextContinuationToken>`,
          ]
        : []),
      "</ListBucketResult>",
    ]);
  };

  const listVersions = (res: ServerResponse, name: string, query: URLSearchParams) => {
    count("ListObjectVersions");
    const prefix = query.get("prefix") ?? "";
    const delimiter = query.get("delimiter") ?? "";
    const maxKeys = maxKeysOf(query);
    const keyMarker = query.get("key-marker") ?? "";
    const versionMarker = query.get("version-id-marker");
    const entries = listing(name, prefix, delimiter, (_, versions) =>
      versions.map((version, n) => ({ ...version, latest: n === versions.length - 1 })).reverse(),
    );
    // A key marker alone resumes after every version of that key (or every key under that common
    // prefix); with a version id marker, after that version of it.
    const resumeAt =
      versionMarker === null || versionMarker === ""
        ? entries.findIndex((entry) => entry.key > keyMarker)
        : entries.findIndex(
            (entry) => !entry.common && entry.key === keyMarker && entry.entry.versionId === versionMarker,
          ) + 1;
    const remaining = resumeAt === -1 ? [] : entries.slice(resumeAt);
    const page = remaining.slice(0, maxKeys);
    const truncated = remaining.length > page.length;
    const last = page.at(-1);
    reply(res, [
      `${xml}<ListVersionsResult ${ns}>`,
      `<Name>${xmlEscape(name)}</Name><Prefix>${xmlEscape(prefix)}</Prefix>`,
      `<KeyMarker>${xmlEscape(keyMarker)}</KeyMarker><VersionIdMarker>${xmlEscape(versionMarker ?? "")}</VersionIdMarker>`,
      `<MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${truncated}</IsTruncated>`,
      ...(delimiter === "" ? [] : [`<Delimiter>${xmlEscape(delimiter)}</Delimiter>`]),
      ...page.map((entry) => {
        if (entry.common) return commonPrefix(entry.key);
        const { versionId, body, lastModified, latest } = entry.entry;
        const common = `<Key>${xmlEscape(entry.key)}</Key><VersionId>${versionId}</VersionId><IsLatest>${latest}</IsLatest><LastModified>${lastModified}</LastModified>`;
        return body === undefined
          ? `<DeleteMarker>${common}</DeleteMarker>`
          : `<Version>${common}<ETag>${xmlEscape(etagOf(body))}</ETag><Size>${Buffer.byteLength(body)}</Size><StorageClass>STANDARD</StorageClass></Version>`;
      }),
      ...(truncated && last !== undefined
        ? [
            `<NextKeyMarker>${xmlEscape(last.key)}</NextKeyMarker>`,
            ...(last.common ? [] : [`<NextVersionIdMarker>${last.entry.versionId}</NextVersionIdMarker>`]),
          ]
        : []),
      "</ListVersionsResult>",
    ]);
  };

  const handle = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const [, name = "", ...rest] = url.pathname.split("/");
    const key = decodeURIComponent(rest.join("/"));
    const versionId = url.searchParams.get("versionId");
    if (name === "") return error(res, 400, "InvalidRequest", "only path-style requests are faked");
    if (req.method === "GET" && key === "" && url.searchParams.get("list-type") === "2") {
      return listObjects(res, name, url.searchParams);
    }
    if (req.method === "GET" && key === "" && url.searchParams.has("versions")) {
      return listVersions(res, name, url.searchParams);
    }
    // The SDK names the operation in `x-id`; any other parameter is a subresource (retention, ...).
    const subresource = [...url.searchParams.keys()].some((param) => param !== "x-id");
    if (req.method === "PUT" && key !== "" && !subresource) {
      count("PutObject");
      if (req.headers["if-none-match"] === "*" && current(name, key)?.body !== undefined) {
        return error(
          res,
          412,
          "PreconditionFailed",
          "At least one of the pre-conditions you specified did not hold",
        );
      }
      const version = addVersion(name, key, body);
      res.writeHead(200, { etag: etagOf(body), "x-amz-version-id": version.versionId });
      return res.end();
    }
    if (req.method === "GET" && key !== "") {
      count("GetObject");
      const versions = bucketOf(name).get(key) ?? [];
      const version = versionId === null ? versions.at(-1) : versions.find((v) => v.versionId === versionId);
      if (version === undefined) {
        return versionId === null
          ? error(res, 404, "NoSuchKey", "The specified key does not exist.")
          : error(res, 404, "NoSuchVersion", "The specified version does not exist.");
      }
      if (version.body === undefined) {
        // S3 answers a delete marker's own version id with 405, the current one with 404.
        res.setHeader("x-amz-delete-marker", "true");
        return versionId === null
          ? error(res, 404, "NoSuchKey", "The specified key does not exist.")
          : error(res, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
      }
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(version.body),
        "x-amz-version-id": version.versionId,
      });
      return res.end(version.body);
    }
    if (req.method === "DELETE" && key !== "") {
      count("DeleteObject");
      if (versionId === null) {
        const marker = addVersion(name, key, undefined);
        res.writeHead(204, { "x-amz-delete-marker": "true", "x-amz-version-id": marker.versionId });
        return res.end();
      }
      const bucket = bucketOf(name);
      bucket.set(
        key,
        (bucket.get(key) ?? []).filter((v) => v.versionId !== versionId),
      );
      res.writeHead(204, { "x-amz-version-id": versionId });
      return res.end();
    }
    return error(res, 501, "NotImplemented", `the S3 stand-in does not fake ${req.method} ${url.pathname}`);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => handle(req, res, Buffer.concat(chunks).toString("utf8")));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    objects(bucket) {
      const objects = new Map<string, string>();
      for (const key of bucketOf(bucket).keys()) {
        const body = current(bucket, key)?.body;
        if (body !== undefined) objects.set(key, body);
      }
      return objects;
    },
    versions: (bucket, key) => [...(bucketOf(bucket).get(key) ?? [])].reverse(),
    putRaw(bucket, key, body) {
      addVersion(bucket, key, body);
    },
    expire(bucket, key) {
      addVersion(bucket, key, undefined);
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
