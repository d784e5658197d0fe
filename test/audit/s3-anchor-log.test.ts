import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainAnchor } from "../../shared/domain/audit-chain.ts";
import { ANCHOR_PREFIX, anchorKey, S3AnchorLog } from "../../shared/storage/s3-anchor-log.ts";
import { DUMMY_CREDENTIALS } from "../../testing/harness.ts";
import { type S3Endpoint, startS3Endpoint } from "../../testing/s3-endpoint.ts";

// The S3 anchor log's contract, through the real @aws-sdk/client-s3 over HTTP. The endpoint is a
// stand-in for S3 (testing/s3-endpoint.ts): Object Lock, lifecycle rules and the bucket policy that
// requires conditional writes cannot run here, so it honours `If-None-Match: *` and keeps versions and
// delete markers as a versioned bucket does, and nothing more. What a lifecycle `Expiration` rule or a
// put past a deleted bucket policy leaves behind is made with `expire` and `putRaw`; who may write,
// delete or change retention is the IAM contract's to check (test/infra/iam-contract.test.ts).

let s3: S3Endpoint;
let buckets = 0;

beforeAll(async () => {
  s3 = await startS3Endpoint();
});

afterAll(async () => {
  await s3.close();
});

function log() {
  buckets += 1;
  const bucket = `anchors-${buckets}`;
  return {
    bucket,
    anchors: new S3AnchorLog({
      bucket,
      region: "us-east-1",
      endpoint: s3.endpoint,
      credentials: DUMMY_CREDENTIALS,
    }),
  };
}

const anchor = (scope: string, sequence: number, hash = `h${sequence}`): ChainAnchor => ({
  scope,
  sequence,
  hash,
  time: "2026-12-03T12:00:00.000Z",
});

describe("S3AnchorLog", () => {
  it("answers a scope's anchor with the highest sequence, from one versions list and one get", async () => {
    const { anchors } = log();
    expect(await anchors.latest("acme")).toBeUndefined();
    // Appended out of order, and past a power of ten, so neither arrival nor string length decides.
    for (const sequence of [9, 2, 10, 1, 100, 99]) await anchors.append(anchor("acme", sequence));
    await anchors.append(anchor("other", 500));
    const before = { list: s3.calls.ListObjectVersions ?? 0, get: s3.calls.GetObject ?? 0 };
    expect(await anchors.latest("acme")).toEqual(anchor("acme", 100));
    expect(s3.calls.ListObjectVersions).toBe(before.list + 1);
    expect(s3.calls.GetObject).toBe(before.get + 1);
    expect(await anchors.latest("other")).toEqual(anchor("other", 500));
  });

  it("keeps one object per anchor under the anchor prefix, named by scope and inverted sequence", async () => {
    const { bucket, anchors } = log();
    await anchors.append(anchor("acme", 7));
    await anchors.append(anchor("acme", 8));
    expect([...s3.objects(bucket).keys()].sort()).toEqual([
      `${ANCHOR_PREFIX}acme/999999999999991.json`,
      `${ANCHOR_PREFIX}acme/999999999999992.json`,
    ]);
    expect(JSON.parse(s3.objects(bucket).get(anchorKey("acme", 7)) ?? "")).toEqual(anchor("acme", 7));
    expect(() => anchorKey("acme", 0)).toThrow(RangeError);
    expect(() => anchorKey("acme", 1e15)).toThrow(RangeError);
  });

  it("lists every scope, across pages, a scope with a slash kept apart from its neighbours", async () => {
    const { anchors } = log();
    const scopes = Array.from({ length: 1003 }, (_, n) => `tenant-${n}`);
    // The delimiter folds each scope's anchors into one common prefix: 1,003 scopes take two pages.
    await Promise.all(scopes.map((scope) => anchors.append(anchor(scope, 1))));
    await anchors.append(anchor("tenant-0", 2));
    await anchors.append(anchor("a/b", 3));
    const listed = await anchors.scopes();
    expect(listed.sort()).toEqual([...scopes, "a/b"].sort());
    expect(await anchors.latest("a")).toBeUndefined();
    expect(await anchors.latest("a/b")).toEqual(anchor("a/b", 3));
  });

  it("refuses to overwrite an anchor with other content, and takes the same anchor again as done", async () => {
    const { bucket, anchors } = log();
    await anchors.append(anchor("acme", 5, "first"));
    const puts = s3.calls.PutObject ?? 0;
    await anchors.append(anchor("acme", 5, "first"));
    await expect(anchors.append(anchor("acme", 5, "second"))).rejects.toMatchObject({
      code: "store_unavailable",
      message: expect.stringMatching(/already exists with other content/),
    });
    expect(s3.calls.PutObject).toBe(puts + 2);
    expect(JSON.parse(s3.objects(bucket).get(anchorKey("acme", 5)) ?? "")).toMatchObject({ hash: "first" });
    expect(await anchors.latest("acme")).toEqual(anchor("acme", 5, "first"));
  });

  it("answers an anchor whose body does not match its key as a mismatch, never as a head", async () => {
    const { bucket, anchors } = log();
    await anchors.append(anchor("acme", 3));
    const forged = [
      // Torn: not JSON at all.
      ["acme", 4, '{"scope":"acme","sequence":4,"ha'],
      // Another scope's anchor copied in.
      ["acme", 5, JSON.stringify(anchor("other", 5))],
      // Its body claims another sequence than its key.
      ["acme", 6, JSON.stringify(anchor("acme", 60))],
      // No hash.
      ["acme", 7, JSON.stringify({ ...anchor("acme", 7), hash: "" })],
    ] as const;
    for (const [scope, sequence, body] of forged) {
      s3.putRaw(bucket, anchorKey(scope, sequence), body);
      expect(await anchors.latest(scope)).toEqual({ scope, sequence, mismatch: true });
    }
    // A key this log never writes, sorted ahead of every real one, claims a head past any.
    s3.putRaw(bucket, `${ANCHOR_PREFIX}acme/!.json`, JSON.stringify(anchor("acme", 8)));
    expect(await anchors.latest("acme")).toEqual({
      scope: "acme",
      sequence: Number.MAX_SAFE_INTEGER,
      mismatch: true,
    });
  });

  it("answers a newest anchor behind a delete marker as a mismatch carrying what its first version said", async () => {
    const { bucket, anchors } = log();
    for (const sequence of [1, 2, 3]) await anchors.append(anchor("acme", sequence));
    // What a lifecycle Expiration rule does to every current version: the anchors drop out of a
    // listing of current objects, and out of what a reader of current versions sees.
    for (const sequence of [1, 2, 3]) s3.expire(bucket, anchorKey("acme", sequence));
    expect(s3.objects(bucket).size).toBe(0);
    expect(await anchors.latest("acme")).toEqual({
      scope: "acme",
      sequence: 3,
      mismatch: true,
      original: { sequence: 3, hash: "h3" },
    });
    expect(await anchors.scopes()).toEqual(["acme"]);
  });

  it("answers a newest anchor with a second version as a mismatch, reading its oldest version across pages", async () => {
    const { bucket, anchors } = log();
    await anchors.append(anchor("acme", 1));
    await anchors.append(anchor("acme", 2, "locked"));
    // Unconditional puts, as once the bucket policy is deleted: more versions than one page holds.
    for (let n = 0; n < 12; n += 1)
      s3.putRaw(bucket, anchorKey("acme", 2), JSON.stringify(anchor("acme", 2, `forged-${n}`)));
    expect(JSON.parse(s3.objects(bucket).get(anchorKey("acme", 2)) ?? "")).toMatchObject({
      hash: "forged-11",
    });
    expect(await anchors.latest("acme")).toEqual({
      scope: "acme",
      sequence: 2,
      mismatch: true,
      original: { sequence: 2, hash: "locked" },
    });
  });

  it("answers newer keys holding only delete markers as a mismatch at the highest sequence they claim", async () => {
    const { bucket, anchors } = log();
    await anchors.append(anchor("acme", 4));
    // Anchors 5 to 7 gone whole (their versions removed once unlocked), their delete markers left.
    for (const sequence of [5, 6, 7]) s3.expire(bucket, anchorKey("acme", sequence));
    expect(await anchors.latest("acme")).toEqual({
      scope: "acme",
      sequence: 7,
      mismatch: true,
      original: { sequence: 4, hash: "h4" },
    });
    s3.expire(bucket, anchorKey("solo", 9));
    expect(await anchors.latest("solo")).toEqual({ scope: "solo", sequence: 9, mismatch: true });
    expect((await anchors.scopes()).sort()).toEqual(["acme", "solo"]);
  });

  it("stops listing past a thousand keys hidden behind delete markers: the mismatch is shown already", async () => {
    const { bucket, anchors } = log();
    await anchors.append(anchor("acme", 1));
    for (let sequence = 2; sequence <= 1_101; sequence += 1) s3.expire(bucket, anchorKey("acme", sequence));
    const lists = s3.calls.ListObjectVersions ?? 0;
    // Anchor 1, past the thousandth hidden key, is not read: no original comes back.
    expect(await anchors.latest("acme")).toEqual({ scope: "acme", sequence: 1_101, mismatch: true });
    expect((s3.calls.ListObjectVersions ?? 0) - lists).toBeLessThan(1_101 / 8);
  });

  it("fails as store_unavailable, naming the S3 operation, when S3 cannot be reached", async () => {
    const down = new S3AnchorLog({
      bucket: "gone",
      region: "us-east-1",
      endpoint: "http://127.0.0.1:9",
      credentials: DUMMY_CREDENTIALS,
      requestTimeoutMs: 500,
    });
    await expect(down.latest("acme")).rejects.toMatchObject({
      code: "store_unavailable",
      message: expect.stringMatching(/^S3 ListObjectVersions failed: /),
    });
    await expect(down.append(anchor("acme", 1))).rejects.toMatchObject({
      message: expect.stringMatching(/^S3 PutObject failed: /),
    });
  });
});

describe("the S3 stand-in's versioning", () => {
  // The log relies on how a versioned bucket answers; these are those answers, through the real SDK.
  it("adds a version per put and a delete marker per delete, lists both newest first across pages, and gets any version", async () => {
    const client = new S3Client({
      region: "us-east-1",
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: DUMMY_CREDENTIALS,
    });
    const Bucket = "versions";
    const put = (Key: string, Body: string) => client.send(new PutObjectCommand({ Bucket, Key, Body }));
    const first = await put("a/1", "one");
    const second = await put("a/1", "two");
    await put("a/2", "other");
    const marker = await client.send(new DeleteObjectCommand({ Bucket, Key: "a/2" }));
    await put("b/1", "b");
    expect(marker.DeleteMarker).toBe(true);
    await expect(
      client.send(new PutObjectCommand({ Bucket, Key: "a/1", Body: "x", IfNoneMatch: "*" })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 412 } });
    // A delete marker is no object: a conditional put over it adds a version.
    await client.send(new PutObjectCommand({ Bucket, Key: "a/2", Body: "again", IfNoneMatch: "*" }));

    const entries: string[] = [];
    let from: { KeyMarker?: string | undefined; VersionIdMarker?: string | undefined } = {};
    for (let pages = 1; ; pages += 1) {
      const page = await client.send(
        new ListObjectVersionsCommand({ Bucket, Prefix: "a/", MaxKeys: 2, ...from }),
      );
      // The SDK parts versions from markers; the stand-in lists them interleaved, as S3 does.
      entries.push(
        ...(page.Versions ?? []).map((v) => `${v.Key} ${v.IsLatest ? "latest" : "old"}`),
        ...(page.DeleteMarkers ?? []).map((m) => `${m.Key} marker`),
      );
      if (page.IsTruncated !== true) {
        expect(pages).toBe(3);
        break;
      }
      from = { KeyMarker: page.NextKeyMarker, VersionIdMarker: page.NextVersionIdMarker };
    }
    expect(entries).toEqual(["a/1 latest", "a/1 old", "a/2 latest", "a/2 marker", "a/2 old"]);

    const folded = await client.send(new ListObjectVersionsCommand({ Bucket, Delimiter: "/", MaxKeys: 1 }));
    expect(folded.CommonPrefixes).toEqual([{ Prefix: "a/" }]);
    const next = await client.send(
      new ListObjectVersionsCommand({ Bucket, Delimiter: "/", KeyMarker: folded.NextKeyMarker }),
    );
    expect(next.CommonPrefixes).toEqual([{ Prefix: "b/" }]);

    const body = async (VersionId?: string) => {
      const object = await client.send(new GetObjectCommand({ Bucket, Key: "a/1", VersionId }));
      return object.Body?.transformToString();
    };
    expect(await body()).toBe("two");
    expect(await body(first.VersionId)).toBe("one");
    expect(await body(second.VersionId)).toBe("two");
    client.destroy();
  });
});
