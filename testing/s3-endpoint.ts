/**
 * A test double for S3, for the audit anchor log: no S3 runs here, and the fake S3 servers on npm
 * (s3rver 3.7.1, from 2021) predate S3's conditional writes, so they would overwrite an anchor that
 * `If-None-Match: *` must protect. This loopback server speaks just the REST calls the real
 * `@aws-sdk/client-s3` makes for S3AnchorLog, path-style (`/<bucket>/<key>`): PutObject (honouring
 * `If-None-Match: *` with 412 PreconditionFailed), GetObject, and ListObjectsV2 with prefix, delimiter,
 * max-keys and continuation tokens. Object Lock and bucket policies are not modelled: what a role may
 * do is the IAM contract's to decide (testing/iam/), and what is stored here can be changed at will by
 * `putRaw` and `remove`, as the attacker the anchors defend against cannot in AWS. Signatures are not checked.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface S3Endpoint {
  /** `http://127.0.0.1:PORT`, for `new S3Client({ endpoint, forcePathStyle: true })`. */
  readonly endpoint: string;
  /** Requests received per operation (`PutObject`, `GetObject`, `ListObjectsV2`), refused ones included. */
  readonly calls: Record<string, number>;
  /** The objects of a bucket, by key, as text. */
  objects(bucket: string): Map<string, string>;
  /** Stores an object whatever is there already: a forger's write, for tests. */
  putRaw(bucket: string, key: string, body: string): void;
  remove(bucket: string, key: string): void;
  close(): Promise<void>;
}

const xmlEscape = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function error(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { "content-type": "application/xml" });
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>`,
  );
}

export async function startS3Endpoint(): Promise<S3Endpoint> {
  const buckets = new Map<string, Map<string, string>>();
  const calls: Record<string, number> = {};
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

  const list = (res: ServerResponse, name: string, query: URLSearchParams) => {
    count("ListObjectsV2");
    const prefix = query.get("prefix") ?? "";
    const delimiter = query.get("delimiter") ?? "";
    const maxKeys = Math.min(Number(query.get("max-keys") ?? 1000), 1000);
    const token = query.get("continuation-token");
    const after = token === null ? (query.get("start-after") ?? "") : Buffer.from(token, "base64").toString();
    // S3 lists in ascending UTF-8 byte order; a common prefix counts once, where its first key sorts.
    const keys = [...bucketOf(name).keys()].filter((key) => key.startsWith(prefix)).sort();
    const entries: { key: string; common: boolean }[] = [];
    for (const key of keys) {
      const rest = key.slice(prefix.length);
      const cut = delimiter === "" ? -1 : rest.indexOf(delimiter);
      const entry =
        cut === -1
          ? { key, common: false }
          : { key: prefix + rest.slice(0, cut + delimiter.length), common: true };
      if (entries.at(-1)?.key !== entry.key) entries.push(entry);
    }
    const remaining = entries.filter((entry) => entry.key > after);
    const page = remaining.slice(0, maxKeys);
    const truncated = remaining.length > page.length;
    const objects = bucketOf(name);
    const body = [
      `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`,
      `<Name>${xmlEscape(name)}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${page.length}</KeyCount>`,
      `<MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${truncated}</IsTruncated>`,
      ...(delimiter === "" ? [] : [`<Delimiter>${xmlEscape(delimiter)}</Delimiter>`]),
      ...page.map((entry) =>
        entry.common
          ? `<CommonPrefixes><Prefix>${xmlEscape(entry.key)}</Prefix></CommonPrefixes>`
          : `<Contents><Key>${xmlEscape(entry.key)}</Key><Size>${Buffer.byteLength(objects.get(entry.key) ?? "")}</Size></Contents>`,
      ),
      ...(truncated
        ? [
            `<NextContinuationToken>${Buffer.from(page.at(-1)?.key ?? "").toString("base64")}</NextContinuationToken>`,
          ]
        : []),
      "</ListBucketResult>",
    ].join("");
    res.writeHead(200, { "content-type": "application/xml" });
    res.end(body);
  };

  const handle = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const [, name = "", ...rest] = url.pathname.split("/");
    const key = decodeURIComponent(rest.join("/"));
    if (name === "") return error(res, 400, "InvalidRequest", "only path-style requests are faked");
    if (req.method === "GET" && key === "" && url.searchParams.get("list-type") === "2") {
      return list(res, name, url.searchParams);
    }
    if (req.method === "PUT" && key !== "") {
      count("PutObject");
      const objects = bucketOf(name);
      if (req.headers["if-none-match"] === "*" && objects.has(key)) {
        return error(
          res,
          412,
          "PreconditionFailed",
          "At least one of the pre-conditions you specified did not hold",
        );
      }
      objects.set(key, body);
      res.writeHead(200, { etag: `"${createHash("md5").update(body).digest("hex")}"` });
      return res.end();
    }
    if (req.method === "GET" && key !== "") {
      count("GetObject");
      const object = bucketOf(name).get(key);
      if (object === undefined) return error(res, 404, "NoSuchKey", "The specified key does not exist.");
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(object) });
      return res.end(object);
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
    objects: bucketOf,
    putRaw(bucket, key, body) {
      bucketOf(bucket).set(key, body);
    },
    remove(bucket, key) {
      bucketOf(bucket).delete(key);
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
