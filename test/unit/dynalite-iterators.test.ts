import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dynaliteAbstractLevel } from "../../shared/storage/dynalite-iterators.ts";
import { openTable, startLocalDynamo } from "../../shared/storage/local-dynamo.ts";
import { createTable, ensureTableExists, type Table } from "../../shared/storage/table.ts";

// LevelDB iterators (and snapshots) attach to their database until closed: the count of attached
// resources is the count of native iterators dynalite holds open.
let open = 0;
const level = dynaliteAbstractLevel().AbstractLevel.prototype;
const { attachResource, detachResource } = level;
const dataDir = mkdtempSync(join(tmpdir(), "strongbox-dynalite-iterators-"));
const closers: (() => Promise<void>)[] = [];

beforeAll(() => {
  level.attachResource = function (resource) {
    open += 1;
    attachResource.call(this, resource);
  };
  level.detachResource = function (resource) {
    open -= 1;
    detachResource.call(this, resource);
  };
});

afterAll(async () => {
  level.attachResource = attachResource;
  level.detachResource = detachResource;
  for (const close of closers) await close();
  rmSync(dataDir, { recursive: true, force: true });
});

const tableName = () => `strongbox-${randomBytes(4).toString("hex")}`;

/**
 * Each store is started inside its test, the one `npm start` opens first: the fix patches a shared
 * prototype, so a store started earlier would hide a starter that does not apply it.
 */
const starters: Record<string, () => Promise<Table>> = {
  "openTable (npm start: on disk, private socket)": async () => {
    const opened = await openTable({
      region: "us-east-1",
      tableName: tableName(),
      localPath: join(dataDir, "a"),
    });
    closers.push(opened.close);
    return opened.table;
  },
  "startLocalDynamo (tests, benches)": async () => {
    const dynamo = await startLocalDynamo({ path: join(dataDir, "b") });
    closers.push(dynamo.close);
    const credentials = { accessKeyId: "local", secretAccessKey: "local" };
    return createTable({ endpoint: dynamo.endpoint, region: "us-east-1", credentials }, tableName());
  },
};

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

describe.each(Object.keys(starters))("the in-process dynalite of %s", (name) => {
  it("closes the LevelDB iterator of every query and scan, however it ends", async () => {
    const table = await (starters[name] as () => Promise<Table>)();
    await ensureTableExists(table);
    for (let i = 0; i < 30; i += 1) {
      await table.doc.send(new PutCommand({ TableName: table.name, Item: { pk: "P", sk: `item-${i}` } }));
    }
    await settle();
    const before = open;
    const pk = { keyCondition: "pk = :pk" };
    for (let i = 0; i < 100; i += 1) {
      await table.query({ ...pk, values: { ":pk": "P" } });
      await table.query({ ...pk, values: { ":pk": "P" }, limit: 1, forward: false });
      await table.query({ ...pk, values: { ":pk": "absent" } });
      await table.scan({});
    }
    await settle();
    // Before the fix each of the 400 requests left an iterator open (two resources each).
    expect(open - before).toBeLessThanOrEqual(0);
    expect(open).toBeGreaterThanOrEqual(0);
  });
});
