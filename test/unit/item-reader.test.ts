import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { StoreUnavailableError } from "../../shared/domain/errors.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { injectFault } from "../../testing/faults.ts";
import { startStore } from "../../testing/harness.ts";

let store: { dynamo: LocalDynamo; table: Table };
let table: Table;
const sent: string[] = [];

beforeAll(async () => {
  store = await startStore();
  table = store.table;
  // Counts what actually goes on the wire, by command name.
  table.doc.middlewareStack.add(
    (next, context) => async (args) => {
      sent.push(String(context.commandName));
      return next(args);
    },
    { step: "initialize", name: "count-commands" },
  );
  for (let i = 0; i < 150; i += 1) {
    await table.doc.send(new PutCommand({ TableName: table.name, Item: { pk: "P", sk: `item-${i}`, n: i } }));
  }
});
beforeEach(() => {
  sent.length = 0;
});
afterAll(() => store.dynamo.close());

describe("ItemReader", () => {
  it("a lone read is one GetItem", async () => {
    expect(await table.get({ pk: "P", sk: "item-1" })).toMatchObject({ n: 1 });
    expect(sent).toEqual(["GetItemCommand"]);
  });

  it("reads asked for in the same tick share one BatchGetItem, and each gets its own item", async () => {
    const [a, b, missing] = await Promise.all([
      table.get({ pk: "P", sk: "item-2" }),
      table.get({ pk: "P", sk: "item-3" }),
      table.get({ pk: "P", sk: "absent" }),
    ]);
    expect(a).toMatchObject({ n: 2 });
    expect(b).toMatchObject({ n: 3 });
    expect(missing).toBeUndefined();
    expect(sent).toEqual(["BatchGetItemCommand"]);
  });

  it("the same key asked for twice in a tick is fetched once and answers both", async () => {
    const [first, second] = await Promise.all([
      table.get({ pk: "P", sk: "item-4" }),
      table.get({ pk: "P", sk: "item-4" }),
    ]);
    expect(first).toMatchObject({ n: 4 });
    expect(second).toEqual(first);
    expect(sent).toEqual(["GetItemCommand"]);
  });

  it("more than 100 reads in a tick are split into batches of at most 100", async () => {
    const items = await Promise.all(
      Array.from({ length: 150 }, (_, i) => table.get({ pk: "P", sk: `item-${i}` })),
    );
    expect(items.map((item) => item?.n)).toEqual(Array.from({ length: 150 }, (_, i) => i));
    expect(sent).toEqual(["BatchGetItemCommand", "BatchGetItemCommand"]);
  });

  it("a failed batch fails every read in it with StoreUnavailableError", async () => {
    const fault = injectFault(table, (call) => call.commandName === "BatchGetItemCommand");
    const results = await Promise.allSettled([
      table.get({ pk: "P", sk: "item-5" }),
      table.get({ pk: "P", sk: "item-6" }),
    ]);
    fault.remove();
    for (const result of results) {
      expect(result.status).toBe("rejected");
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailableError);
    }
  });
});

describe("the read path", () => {
  it("reads written in later ticks are not held back waiting for a batch", async () => {
    const first = await table.get({ pk: "P", sk: "item-7" });
    const second = await table.get({ pk: "P", sk: "item-8" });
    expect([first?.n, second?.n]).toEqual([7, 8]);
    expect(sent).toEqual(["GetItemCommand", "GetItemCommand"]);
  });
});
