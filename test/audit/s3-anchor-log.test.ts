import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainAnchor } from "../../shared/domain/audit-chain.ts";
import { ANCHOR_PREFIX, anchorKey, S3AnchorLog } from "../../shared/storage/s3-anchor-log.ts";
import { DUMMY_CREDENTIALS } from "../../testing/harness.ts";
import { type S3Endpoint, startS3Endpoint } from "../../testing/s3-endpoint.ts";

// The S3 anchor log's contract, through the real @aws-sdk/client-s3 over HTTP. The endpoint is a
// stand-in for S3 (testing/s3-endpoint.ts): Object Lock and the bucket policy that requires
// conditional writes cannot run here, so it honours `If-None-Match: *` as S3 does and nothing more;
// who may write, delete or change retention is the IAM contract's to check (test/infra/iam-contract.test.ts).

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
  it("answers a scope's anchor with the highest sequence, from one list and one get", async () => {
    const { anchors } = log();
    expect(await anchors.latest("acme")).toBeUndefined();
    // Appended out of order, and past a power of ten, so neither arrival nor string length decides.
    for (const sequence of [9, 2, 10, 1, 100, 99]) await anchors.append(anchor("acme", sequence));
    await anchors.append(anchor("other", 500));
    const before = { list: s3.calls.ListObjectsV2 ?? 0, get: s3.calls.GetObject ?? 0 };
    expect(await anchors.latest("acme")).toEqual(anchor("acme", 100));
    expect(s3.calls.ListObjectsV2).toBe(before.list + 1);
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
      message: expect.stringMatching(/^S3 ListObjectsV2 failed: /),
    });
    await expect(down.append(anchor("acme", 1))).rejects.toMatchObject({
      message: expect.stringMatching(/^S3 PutObject failed: /),
    });
  });
});
