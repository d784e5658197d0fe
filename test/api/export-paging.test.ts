import { KMSClient } from "@aws-sdk/client-kms";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAMBDA_RESPONSE_LIMIT_BYTES } from "../../functions/api/response-limit.ts";
import { KmsChainKeys } from "../../shared/crypto/chain-keys.ts";
import { KmsKeyring } from "../../shared/crypto/kms-keyring.ts";
import { bootstrapToken } from "../../shared/crypto/tokens.ts";
import type { ChainedAuditRecord } from "../../shared/domain/audit-chain.ts";
import { AuditRepository } from "../../shared/storage/audit-repository.ts";
import { type Bundle, buildBundle, invokeBundle } from "../../testing/bundles.ts";
import { DUMMY_CREDENTIALS, startHarness } from "../../testing/harness.ts";
import { httpApiEvent } from "../../testing/http-api-event.ts";
import { type LoopbackStage, startLoopbackStage } from "../../testing/iam/loopback-stage.ts";

// An audit export larger than Lambda's 6 MiB response limit, through the bundle API Gateway invokes
// (built as CDK builds it, run in a fresh Node process, answering HTTP API events), with the environment
// its dev template gives it, against the stage's AWS on loopback behind the IAM proxy.

const SCOPE = "bulk";
/** About 2.5 KB each as exported, so this many make more than 10 MiB of JSON lines. */
const RECORDS = 4300;
const TEN_MIB = 10 * 1024 * 1024;

let bundle: Bundle;
let stage: LoopbackStage;
let env: Record<string, string>;
let admin: string;

interface Page {
  readonly result: {
    statusCode: number;
    body: string;
    isBase64Encoded: boolean;
    headers: Record<string, string>;
  };
  readonly records: ChainedAuditRecord[];
  readonly trailer: Record<string, unknown>;
  readonly bodyBytes: number;
}
const pages: Page[] = [];
const stored: ChainedAuditRecord[] = [];
let verify: { statusCode: number; body: string };

function parsePage(result: Page["result"]): Page {
  const body = result.isBase64Encoded ? Buffer.from(result.body, "base64").toString("utf8") : result.body;
  const lines = body
    .trimEnd()
    .split("\n")
    .map((line) => JSON.parse(line));
  return { result, records: lines.slice(0, -1), trailer: lines.at(-1), bodyBytes: Buffer.byteLength(body) };
}

beforeAll(async () => {
  [bundle, stage] = await Promise.all([buildBundle("api"), startLoopbackStage("dev")]);
  const [secret] = stage.shape.secrets;
  admin = bootstrapToken(stage.secretValue(secret?.arn ?? ""))?.token ?? "";
  env = stage.functionEnv("api");
  const kekArn = env.KMS_KEY_ID ?? "";
  const macKeyArn = env.AUDIT_MAC_KEY_ID ?? "";

  // Seeded through the chain writer itself, as an instance of the service on the same keys appends:
  // every record waiting while a block is written goes into the next block (group commit).
  const client = () =>
    new KMSClient({ endpoint: stage.kms.endpoint, region: "us-east-1", credentials: DUMMY_CREDENTIALS });
  const seeder = await startHarness({
    store: { dynamo: stage.dynamo, table: stage.table },
    keyring: new KmsKeyring({ client: client(), keyId: kekArn }),
    chainKeys: new KmsChainKeys({ client: client(), keyId: macKeyArn }),
  });
  const detail = "x".repeat(2000);
  await Promise.all(
    Array.from({ length: RECORDS }, (_, n) =>
      seeder.runtime.chainWriter.append({
        tenantId: SCOPE,
        action: "secret.read",
        outcome: "success",
        actor: "export-filler",
        role: "runner",
        requestId: `filler-${n}`,
        time: new Date().toISOString(),
        detail,
      }),
    ),
  );

  // The client follows the cursor, one invocation (one fresh process, a cold start) per page.
  let cursor: string | undefined;
  do {
    const run = await invokeBundle(bundle, env, [
      httpApiEvent("GET", `/v1/tenants/${SCOPE}/audit/export`, {
        headers: { authorization: `Bearer ${admin}` },
        ...(cursor === undefined ? {} : { query: `cursor=${encodeURIComponent(cursor)}` }),
      }),
    ]);
    const page = parsePage(run.results[0]);
    pages.push(page);
    cursor = typeof page.trailer.nextCursor === "string" ? page.trailer.nextCursor : undefined;
  } while (cursor !== undefined && pages.length < 20);

  // What the audit sequencer function does with the stream in AWS: the last page's record is chained.
  await seeder.runtime.sequencer.catchUp(SCOPE);
  for await (const { record } of new AuditRepository(stage.table).walk(SCOPE)) stored.push(record);
  const verified = await invokeBundle(bundle, env, [
    httpApiEvent("GET", `/v1/tenants/${SCOPE}/audit/verify`, {
      headers: { authorization: `Bearer ${admin}` },
    }),
  ]);
  verify = verified.results[0];
}, 180_000);
afterAll(async () => {
  await stage?.close();
});

describe("an audit export over Lambda's response limit, through the bundled API function", () => {
  it("holds more than 10 MiB of audit records in all, over several pages", () => {
    expect(pages.every((page) => page.result.statusCode === 200)).toBe(true);
    expect(pages.reduce((sum, page) => sum + page.bodyBytes, 0)).toBeGreaterThan(TEN_MIB);
    expect(pages.length).toBeGreaterThanOrEqual(3);
    expect(pages.at(-1)?.trailer.nextCursor).toBeUndefined();
  });

  it("answers every page within the limit, as the function's whole response", () => {
    for (const page of pages) {
      const responseBytes = Buffer.byteLength(JSON.stringify(page.result));
      expect(responseBytes).toBeLessThan(6_000_000);
      expect(responseBytes).toBeLessThan(LAMBDA_RESPONSE_LIMIT_BYTES);
      expect(page.result.headers["content-type"]).toBe("application/x-ndjson");
    }
  });

  it("ends each page with a trailer carrying its count, chain position and, while more remain, a cursor", () => {
    for (const [n, page] of pages.entries()) {
      const last = page.records.at(-1);
      expect(page.trailer).toEqual({
        end: true,
        records: page.records.length,
        lastSequence: last?.sequence,
        lastHash: last?.hash,
        ...(n < pages.length - 1 ? { nextCursor: expect.any(String) } : {}),
      });
    }
  });

  it("concatenates to the whole chain, in order, with no gap and no duplicate", () => {
    const exported = pages.flatMap((page) => page.records);
    expect(exported.map((record) => record.sequence)).toEqual(
      Array.from({ length: exported.length }, (_, n) => n + 1),
    );
    // Each page's own audit.export record is in the page after it; the last page's is the only one not exported.
    expect(stored).toHaveLength(exported.length + 1);
    expect(exported).toEqual(stored.slice(0, exported.length));
    expect(exported.filter((record) => record.action === "audit.export")).toHaveLength(pages.length - 1);
  });

  it("records each page as the success it was, naming what it held", () => {
    const exportRecords = stored.filter((record) => record.action === "audit.export");
    expect(exportRecords.map((record) => record.outcome)).toEqual(pages.map(() => "success"));
    expect(exportRecords.map((record) => record.detail)).toEqual(
      pages.map(
        (page, n) =>
          `records=${page.records.length} lastSequence=${page.records.at(-1)?.sequence}` +
          `${n > 0 ? " continued=true" : ""}${n < pages.length - 1 ? " more=true" : ""}`,
      ),
    );
  });

  it("leaves the chain intact", () => {
    expect(verify.statusCode).toBe(200);
    expect(JSON.parse(verify.body)).toMatchObject({
      scope: SCOPE,
      intact: true,
      verifiedThrough: stored.length,
    });
  });
});
