import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { type CliResult, runCli } from "../../testing/cli-process.ts";
import { auditRecordKey, deleteRawItem, getRawAuditRecord, putRawAuditRecord } from "../../testing/faults.ts";
import {
  DUMMY_CREDENTIALS,
  type Harness,
  randomKek,
  startHarness,
  startStore,
} from "../../testing/harness.ts";

// `strongbox audit verify` (what `npm run audit:verify` runs) as a child process, against the same dynalite the test's service writes to.

const kek = randomKek();
// Its own data folder: the anchors of a developer's `.data/` would name chains this table lacks.
const dataDir = mkdtempSync(join(tmpdir(), "strongbox-cli-store-"));
let store: { dynamo: LocalDynamo; table: Table };
let h: Harness;

function runVerify(...scopes: string[]): Promise<CliResult> {
  return runCli(["audit", "verify", ...scopes], {
    env: {
      DATA_DIR: dataDir,
      CREDENTIALS_KEK: Buffer.from(kek).toString("base64"),
      DYNAMODB_ENDPOINT: store.dynamo.endpoint,
      TABLE_NAME: store.table.name,
      AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
    },
  });
}

beforeAll(async () => {
  store = await startStore();
  h = await startHarness({ store, keyring: new LocalKeyring({ active: kek, previous: [] }) });
  const admin = await h.token("admin");
  for (const tenantId of ["acme", "globex"]) {
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId } })).status).toBe(201);
  }
  const issued = await h.call("POST", "/v1/tokens", {
    token: admin,
    body: { role: "runner", tenants: ["acme"], ttlSeconds: 600 },
  });
  expect(issued.status).toBe(201);
});
afterAll(async () => {
  await store.dynamo.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("strongbox audit verify on a store", () => {
  it("reports every chain in the table intact, with its last sequence, and exits 0", async () => {
    const result = await runVerify();
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^_system: intact up to sequence 2 \(2 records/m);
    expect(result.stdout).toMatch(/^acme: intact up to sequence 2 \(2 records/m);
    expect(result.stdout).toMatch(/^globex: intact up to sequence 2 \(2 records/m);
  });

  it("names the first broken sequence and why, and exits 1", async () => {
    const record = await getRawAuditRecord(store.table, "globex", 2);
    await putRawAuditRecord(store.table, "globex", 2, { ...record, outcome: "failure" });
    const result = await runVerify("acme", "globex");
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^acme: intact up to sequence 2 /m);
    expect(result.stdout).toContain(
      "globex: broken at sequence 2: the record's content does not match its hash: it was edited",
    );
  });

  it("with --expect, a chain whose tail was cut off after that head was taken is truncated, and exits 1", async () => {
    const head = await getRawAuditRecord(store.table, "acme", 2);
    await deleteRawItem(store.table, auditRecordKey("acme", 2));
    // A fresh process remembers no head: without one, the shortened chain looks whole.
    expect((await runVerify("acme")).stdout).toMatch(/^acme: intact up to sequence 1 /m);
    const result = await runVerify("--expect", `acme:2:${head.hash}`);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^acme: broken at sequence 2: the chain ends before, or differs at, a head/m,
    );
  });

  it("refuses a malformed --expect with exit code 2, naming the form it needs", async () => {
    const result = await runVerify("--expect", "acme:two:abc");
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--expect needs scope:sequence:hash");
  });
});
