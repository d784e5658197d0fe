import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { deletionCertificateKey } from "../../shared/storage/keys.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { type CliResult, runCli } from "../../testing/cli-process.ts";
import { getRawItem, putRawItem } from "../../testing/faults.ts";
import { DUMMY_CREDENTIALS, randomKek, startHarness, startStore } from "../../testing/harness.ts";

// `strongbox tenants certificate` (what `npm run tenant:certificate` runs) as a child process, against the dynalite the test's service wrote to.

const kek = randomKek();
// Its own data folder: the anchors of a developer's `.data/` would name chains this table lacks.
const dataDir = mkdtempSync(join(tmpdir(), "strongbox-cli-store-"));
let store: { dynamo: LocalDynamo; table: Table };

function runCheck(kekUsed: Uint8Array, ...tenants: string[]): Promise<CliResult> {
  return runCli(["tenants", "certificate", ...tenants], {
    env: {
      DATA_DIR: dataDir,
      CREDENTIALS_KEK: Buffer.from(kekUsed).toString("base64"),
      DYNAMODB_ENDPOINT: store.dynamo.endpoint,
      TABLE_NAME: store.table.name,
      AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
    },
  });
}

beforeAll(async () => {
  store = await startStore();
  const h = await startHarness({ store, keyring: new LocalKeyring({ active: kek, previous: [] }) });
  const admin = await h.token("admin");
  for (const tenantId of ["gone", "alive"]) {
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId } })).status).toBe(201);
  }
  await h.call("PUT", "/v1/tenants/gone/secrets/key", { token: admin, body: { value: "shredded" } });
  const deleted = await h.call("DELETE", "/v1/tenants/gone", { token: admin, body: { confirm: "gone" } });
  expect(deleted.status).toBe(200);
});
afterAll(async () => {
  await store.dynamo.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("strongbox tenants certificate", () => {
  it("prints a deleted tenant's certificate, says it verifies, and exits 0", async () => {
    const result = await runCheck(kek, "gone");
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^gone: certificate verifies$/m);
    expect(result.stdout).toContain('"dekVersionsDestroyed": [\n    1\n  ]');
  });

  it("exits 1 for an edited certificate, for one checked with another KEK, and for a tenant with none", async () => {
    const stored = await getRawItem(store.table, deletionCertificateKey("gone"));
    await putRawItem(store.table, {
      ...stored,
      certificate: { ...stored.certificate, dekVersionsDestroyed: [] },
    });
    const edited = await runCheck(kek, "gone");
    expect(edited.code).toBe(1);
    expect(edited.stdout).toMatch(/^gone: certificate does NOT verify$/m);
    await putRawItem(store.table, stored);
    expect((await runCheck(randomKek(), "gone")).code).toBe(1);
    const none = await runCheck(kek, "alive");
    expect(none.code).toBe(1);
    expect(none.stdout).toMatch(/^alive: no deletion certificate$/m);
  });

  it("exits 2 naming the missing argument when no tenant is named", async () => {
    const result = await runCheck(kek);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("missing required argument 'tenants'");
  });
});
