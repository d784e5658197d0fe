import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { envelopeDekVersion } from "../../shared/crypto/envelope.ts";
import { kekFingerprint, LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { ConfigError } from "../../shared/domain/errors.ts";
import { deadlineIn } from "../../shared/domain/work.ts";
import { MIN_RETIRE_GRACE_SECONDS, readRuntimeConfig } from "../../shared/runtime/config.ts";
import { getRawItem, headKey } from "../../testing/faults.ts";
import { type Harness, randomKek, startHarness, startStore } from "../../testing/harness.ts";
import { rewrapAndSettle } from "../../testing/rewrap.ts";
import {
  asWrittenBeforeTheDirectory,
  crashAfterWrites,
  runUntilSwept,
} from "../../testing/rotation-fixtures.ts";

/*
 * Regressions from the rotation review: each test is a reviewer's repro of data loss, turned into
 * assertions. Requests are held at the DynamoDB client with a real SDK middleware (nothing is mocked),
 * so a writer can be parked between reading a head and writing it while a sweep runs.
 */

const REASON = { "x-audit-reason": "regression test" };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Parks the next PutItem of the head `sk` until the returned promise's release is called. */
function holdNextHeadPut(h: Harness, sk: string, name: string) {
  let release: () => void = () => undefined;
  let reached: () => void = () => undefined;
  const atPut = new Promise<void>((resolve) => {
    reached = resolve;
  });
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let armed = true;
  h.table.doc.middlewareStack.add(
    (next, context) => async (args) => {
      const item = (args.input as { Item?: { sk?: unknown } }).Item;
      if (armed && context.commandName === "PutItemCommand" && item?.sk === sk) {
        armed = false;
        reached();
        await held;
      }
      return next(args);
    },
    { step: "initialize", name },
  );
  return { atPut, release: () => release(), remove: () => h.table.doc.middlewareStack.remove(name) };
}

describe("a head write that carries envelopes it read, straddling a sweep's re-seal", () => {
  let h: Harness;
  let admin: string;
  beforeAll(async () => {
    h = await startHarness({ env: { ROTATION_LEASE_SECONDS: "0" }, rotation: { retireGraceMs: 2000 } });
    admin = await h.token("admin");
  });
  afterAll(() => h?.close());

  it("re-reads the re-sealed head in every pass, so the retired DEK is never put back", async () => {
    const tenant = "rv";
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: tenant } })).status).toBe(
      201,
    );
    const path = `/v1/tenants/${tenant}/secrets/k`;
    expect((await h.call("PUT", path, { token: admin, body: { value: "the-value" } })).status).toBe(200);
    expect((await h.call("POST", `/v1/tenants/${tenant}/rotate-dek`, { token: admin })).status).toBe(200);

    const straddle = async (days: number) => {
      const hold = holdNextHeadPut(h, "S#k", `hold-${days}`);
      const write = h.call("PUT", `${path}/rotation`, { token: admin, body: { rotationPeriodDays: days } });
      await hold.atPut; // the policy writer has read the head and passed its freshness checks
      const run = await h.runtime.scheduledWork.run(deadlineIn(10_000), `r-${days}`);
      hold.release();
      const res = await write;
      hold.remove();
      const head = await getRawItem(h.table, headKey(tenant, "k"));
      return {
        status: res.status,
        days: (await res.json()).rotationPeriodDays,
        phase: run.sweeps[0]?.phase,
        headDek: envelopeDekVersion(head.envelope),
      };
    };

    expect(await straddle(30)).toEqual({ status: 200, days: 30, phase: "settle", headDek: 2 });
    await sleep(2100);
    expect(await straddle(31)).toEqual({ status: 200, days: 31, phase: "verify", headDek: 2 });
    await sleep(1100);
    expect(await straddle(32)).toEqual({ status: 200, days: 32, phase: "done", headDek: 2 });

    const status = await (await h.call("GET", `/v1/tenants/${tenant}/rotation`, { token: admin })).json();
    expect(status.itemsByDekVersion).toEqual({ "2": 1 });
    expect(status.retiredDataKeys.map((key: { version: number }) => key.version)).toEqual([1]);
    const read = await h.call("GET", path, { token: admin, headers: REASON });
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ version: 1, value: "the-value" });
  }, 30_000);
});

describe("a tenant created before the tenant directory existed", () => {
  it("is backfilled into the directory by the rotation run, so the re-wrap covers it and its old KEK stays until it has", async () => {
    const store = await startStore();
    try {
      const kekA = randomKek();
      const kekB = randomKek();
      const a = await startHarness({ store, keyring: new LocalKeyring({ active: kekA, previous: [] }) });
      const adminA = await a.token("admin");
      const path = "/v1/tenants/legacy/secrets/k";
      expect(
        (await a.call("POST", "/v1/tenants", { token: adminA, body: { tenantId: "legacy" } })).status,
      ).toBe(201);
      expect((await a.call("PUT", path, { token: adminA, body: { value: "v" } })).status).toBe(200);
      await asWrittenBeforeTheDirectory(store.table, ["legacy"]);

      // The API cannot count DEKs over a directory that may miss tenants, and may not Scan to fix it.
      const b = await startHarness({ store, keyring: new LocalKeyring({ active: kekB, previous: [kekA] }) });
      const adminB = await b.token("admin");
      const pending = await b.call("GET", "/v1/kek", { token: adminB });
      expect(pending.status).toBe(503);
      expect((await pending.json()).error.code).toBe("directory_backfill_pending");

      const rotation = await startHarness({
        store,
        keyring: new LocalKeyring({ active: kekB, previous: [kekA] }),
        directoryBackfill: true,
      });
      await rotation.runtime.scheduledWork.run(deadlineIn(10_000), "backfill");
      const before = await (await b.call("GET", "/v1/kek", { token: adminB })).json();
      const oldKek = before.keks.find((kek: { kekId: string }) => kek.kekId === kekFingerprint(kekA));
      expect(oldKek).toMatchObject({ dataKeys: 1, mayBeRemoved: false });

      const after = await rewrapAndSettle(b, adminB);
      expect(after.rewrap).toMatchObject({ phase: "done", rewrapped: 1 });
      expect(after.keks.find((kek: { kekId: string }) => kek.kekId === kekFingerprint(kekA))).toMatchObject({
        dataKeys: 0,
        mayBeRemoved: true,
      });

      const c = await startHarness({ store, keyring: new LocalKeyring({ active: kekB, previous: [] }) });
      expect((await c.runtime.health.check()).healthy).toBe(true);
      const read = await c.call("GET", path, { token: await c.token("admin"), headers: REASON });
      expect(read.status).toBe(200);
      expect(await read.json()).toMatchObject({ value: "v" });
    } finally {
      await store.dynamo.close();
    }
  }, 30_000);
});

describe("DEK_RETIRE_GRACE_SECONDS=0", () => {
  it("is refused at start-up, naming the variable, as is anything under the minimum", () => {
    for (const value of ["0", "9"]) {
      expect(() => readRuntimeConfig({ DEK_RETIRE_GRACE_SECONDS: value })).toThrow(ConfigError);
      expect(() => readRuntimeConfig({ DEK_RETIRE_GRACE_SECONDS: value })).toThrow(
        /DEK_RETIRE_GRACE_SECONDS/,
      );
    }
    expect(
      readRuntimeConfig({ DEK_RETIRE_GRACE_SECONDS: String(MIN_RETIRE_GRACE_SECONDS) }).rotation,
    ).toMatchObject({ retireGraceMs: MIN_RETIRE_GRACE_SECONDS * 1000 });
  });

  it("given directly, makes no snapshot fresh instead of every snapshot", async () => {
    const h = await startHarness({ rotation: { retireGraceMs: 0 } });
    try {
      const admin = await h.token("admin");
      expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "g0" } })).status).toBe(
        201,
      );
      // No writer can commit, because none can prove its DEK snapshot is recent: a 409, nothing written.
      const put = await h.call("PUT", "/v1/tenants/g0/secrets/k", { token: admin, body: { value: "v" } });
      expect(put.status).toBe(409);
      expect(await h.runtime.dekRotation.countByDekVersion("g0")).toEqual({});
    } finally {
      await h.close();
    }
  });

  it("a write held across a rotation and a sweep run still reads back (the reviewer's repro)", async () => {
    const h = await startHarness({ rotation: { retireGraceMs: 1000 } });
    try {
      const admin = await h.token("admin");
      const path = "/v1/tenants/g1/secrets/k";
      expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "g1" } })).status).toBe(
        201,
      );
      expect((await h.call("PUT", path, { token: admin, body: { value: "one" } })).status).toBe(200);
      const hold = holdNextHeadPut(h, "S#k", "hold-g1");
      const write = h.call("PUT", path, { token: admin, body: { value: "two" } });
      await hold.atPut;
      expect((await h.call("POST", "/v1/tenants/g1/rotate-dek", { token: admin })).status).toBe(200);
      const run = await h.runtime.scheduledWork.run(deadlineIn(10_000), "g1");
      expect(run.sweeps).toEqual([expect.objectContaining({ tenantId: "g1", stoppedBecause: "grace" })]);
      hold.release();
      expect((await write).status).toBe(200);
      hold.remove();
      await runUntilSwept(h, "g1", "g1-rest");
      const read = await h.call("GET", path, { token: admin, headers: REASON });
      expect(await read.json()).toMatchObject({ version: 2, value: "two" });
      expect(await h.runtime.dekRotation.countByDekVersion("g1")).toEqual({ 2: 2 });
    } finally {
      await h.close();
    }
  });
});

describe("secret rotation edge cases (review P3)", () => {
  let h: Harness;
  let admin: string;
  beforeAll(async () => {
    h = await startHarness();
    admin = await h.token("admin");
  });
  afterAll(() => h?.close());

  const makeDue = (tenant: string, name: string) =>
    h.table.doc.send(
      new UpdateCommand({
        TableName: h.table.name,
        Key: headKey(tenant, name),
        UpdateExpression: "SET rotation.dueAt = :due",
        ExpressionAttributeValues: { ":due": new Date(Date.now() - 3600_000).toISOString() },
      }),
    );
  const setup = async (tenant: string, names: string[], due = true) => {
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: tenant } })).status).toBe(
      201,
    );
    for (const name of names) {
      const path = `/v1/tenants/${tenant}/secrets/${name}`;
      expect((await h.call("PUT", path, { token: admin, body: { value: "first" } })).status).toBe(200);
      const generator = { generator: { kind: "token", length: 32 } };
      expect((await h.call("PUT", `${path}/rotation`, { token: admin, body: generator })).status).toBe(200);
      if (due) await makeDue(tenant, name);
    }
  };

  it("accepts a generator of exactly 128 bits and refuses one just under", async () => {
    await setup("p3-entropy", ["s"], false);
    const policy = (generator: unknown) =>
      h.call("PUT", "/v1/tenants/p3-entropy/secrets/s/rotation", { token: admin, body: { generator } });
    expect((await policy({ kind: "token", length: 128, alphabet: "ab" })).status).toBe(200);
    const weak = await policy({ kind: "token", length: 127, alphabet: "ab" });
    expect(weak.status).toBe(400);
    expect((await weak.json()).error.code).toBe("invalid_request");
  });

  it("refuses client tokens in the scheduled runner's namespace", async () => {
    await setup("p3-tokens", ["s"], false);
    const path = "/v1/tenants/p3-tokens/secrets/s";
    const rotate = await h.call("POST", `${path}/rotate`, {
      token: admin,
      body: { clientRequestToken: "scheduled-1700000000000" },
    });
    expect(rotate.status).toBe(400);
    const put = await h.call("PUT", path, {
      token: admin,
      body: { value: "x", clientRequestToken: "scheduled-1" },
    });
    expect(put.status).toBe(400);
  });

  it("the scheduled runner finishes a rotation a manual one left in flight instead of failing on it", async () => {
    await setup("p3-wedge", ["s"]);
    const path = "/v1/tenants/p3-wedge/secrets/s";
    // A manual rotation that died after creating its pending value: its writes are the seal count on
    // the tenant item, then the head with the pending value; the archive copy fails.
    const crash = crashAfterWrites(h.table, 2);
    const died = await h.call("POST", `${path}/rotate`, {
      token: admin,
      body: { clientRequestToken: "manual-died-1" },
    });
    crash.remove();
    expect(died.status).toBe(503);
    const staged = await (
      await h.call("GET", `${path}?stage=pending`, { token: admin, headers: REASON })
    ).json();
    expect(staged.version).toBe(2);
    const run = await (await h.call("POST", "/v1/rotation/run", { token: admin, headers: REASON })).json();
    expect(run.due).toMatchObject({ rotated: 1, failed: 0 });
    const read = await h.call("GET", path, { token: admin, headers: REASON });
    expect(await read.json()).toMatchObject({ version: 2, value: staged.value });
  });

  it("the scheduled runner leaves a caller's pending value to the caller, however generator-like it looks", async () => {
    await setup("p3-caller", ["s"]);
    const path = "/v1/tenants/p3-caller/secrets/s";
    // 32 characters of the token alphabet: exactly what the generator could have made.
    const lookalike = "A".repeat(32);
    const staged = await h.call("PUT", path, {
      token: admin,
      body: { value: lookalike, stage: "pending", clientRequestToken: "caller-pending-1" },
    });
    expect(staged.status).toBe(200);
    const run = await (await h.call("POST", "/v1/rotation/run", { token: admin, headers: REASON })).json();
    expect(run.due).toMatchObject({ rotated: 0, notified: 1, failed: 0 });
    expect(await (await h.call("GET", path, { token: admin, headers: REASON })).json()).toMatchObject({
      version: 1,
      value: "first",
    });
    // A manual rotation with the caller's token does not pass the value off as generated either.
    const manual = await h.call("POST", `${path}/rotate`, {
      token: admin,
      body: { clientRequestToken: "caller-pending-1" },
    });
    expect(manual.status).toBe(409);
    expect(manual.text).not.toContain(lookalike);
    // The caller's promote is what makes it current.
    const promoted = await h.call("POST", `${path}/promote`, { token: admin, body: { version: 2 } });
    expect(await promoted.json()).toEqual({ name: "s", current: 2, previous: 1 });
    expect(await (await h.call("GET", path, { token: admin, headers: REASON })).json()).toMatchObject({
      version: 2,
      value: lookalike,
    });
  });

  it("a manual rotation without a token gets a unique one, so two in a row both rotate", async () => {
    await setup("p3-manual", ["s"], false);
    const path = "/v1/tenants/p3-manual/secrets/s";
    const first = await (await h.call("POST", `${path}/rotate`, { token: admin, body: {} })).json();
    const second = await (await h.call("POST", `${path}/rotate`, { token: admin, body: {} })).json();
    expect([first.version, second.version]).toEqual([2, 3]);
  });

  it("the due scan checks the deadline before every tenant, not every page of tenants", async () => {
    await setup("p3-due-a", ["s"]);
    await setup("p3-due-b", ["s"]);
    await h.runtime.scheduledWork.run(deadlineIn(10_000), "p3-due-settle");
    await makeDue("p3-due-a", "s");
    await makeDue("p3-due-b", "s");
    const before = h.runtime.metrics.count("RotationsDue");
    // Out of time as soon as one due secret has been found.
    const oneTenant = { expired: () => h.runtime.metrics.count("RotationsDue") > before };
    const cut = await h.runtime.scheduledWork.run(oneTenant, "p3-due-1");
    expect(cut.due).toMatchObject({ found: 1, rotated: 1, scanComplete: false });
    const rest = await h.runtime.scheduledWork.run(deadlineIn(10_000), "p3-due-2");
    expect(rest.due).toMatchObject({ found: 1, rotated: 1, scanComplete: true });
  });
});
