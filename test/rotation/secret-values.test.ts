import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RotationEvent } from "../../shared/domain/rotation.ts";
import { DAY_MS } from "../../shared/domain/time.ts";
import { deadlineIn } from "../../shared/domain/work.ts";
import type { RotationEvents } from "../../shared/observability/rotation-events.ts";
import { headKey } from "../../testing/faults.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";
import { crashAfterWrites } from "../../testing/rotation-fixtures.ts";

const TENANT = "values";
const REASON = { "x-audit-reason": "secret rotation test" };

let h: Harness;
let admin: string;
/** Every event the runtime published, captured where EventBridge would receive them. */
const published: RotationEvent[] = [];
const events: RotationEvents = {
  publish: async (batch) => {
    published.push(...batch);
  },
};

const path = (name: string, suffix = "") => `/v1/tenants/${TENANT}/secrets/${name}${suffix}`;
const read = (name: string, query = "") =>
  h.call("GET", `${path(name)}${query}`, { token: admin, headers: REASON });
const readJson = async (name: string, query = "") => (await read(name, query)).json();
const put = (name: string, body: Record<string, unknown>) =>
  h.call("PUT", path(name), { token: admin, body });
const post = (name: string, action: string, body: Record<string, unknown> = {}) =>
  h.call("POST", path(name, `/${action}`), { token: admin, body });
const policy = (name: string, body: Record<string, unknown>) =>
  h.call("PUT", path(name, "/rotation"), { token: admin, body });

/** Moves a secret's due date into the past behind the service's back: the test's stand-in for time passing. */
async function makeDue(name: string, daysAgo = 1) {
  await h.table.doc.send(
    new UpdateCommand({
      TableName: h.table.name,
      Key: headKey(TENANT, name),
      UpdateExpression: "SET rotation.dueAt = :due",
      ExpressionAttributeValues: { ":due": new Date(Date.now() - daysAgo * DAY_MS).toISOString() },
    }),
  );
}

beforeAll(async () => {
  h = await startHarness({ events });
  admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } })).status).toBe(
    201,
  );
});
afterAll(() => h?.close());

describe("staging labels: current, pending, previous", () => {
  it("a pending version is readable by label and number but not current until promoted", async () => {
    for (const value of ["one", "two"]) expect((await put("labels", { value })).status).toBe(200);
    const staged = await put("labels", { value: "three", stage: "pending" });
    expect(await staged.json()).toEqual({ name: "labels", version: 3 });
    expect(await readJson("labels")).toMatchObject({ version: 2, value: "two" });
    expect(await readJson("labels", "?stage=current")).toMatchObject({ version: 2, value: "two" });
    expect(await readJson("labels", "?stage=pending")).toMatchObject({ version: 3, value: "three" });
    expect(await readJson("labels", "?stage=previous")).toMatchObject({ version: 1, value: "one" });
    expect(await readJson("labels", "?version=3")).toMatchObject({ version: 3, value: "three" });
    const list = await (await h.call("GET", `/v1/tenants/${TENANT}/secrets`, { token: admin })).json();
    expect(list.secrets.find((s: { name: string }) => s.name === "labels")).toMatchObject({
      version: 2,
      pendingVersion: 3,
    });
  });

  it("a plain write or a second pending one is refused while a version is pending", async () => {
    expect((await put("labels", { value: "four" })).status).toBe(409);
    expect((await put("labels", { value: "four", stage: "pending" })).status).toBe(409);
    expect((await post("labels", "rollback", { version: 1 })).status).toBe(409);
    expect(await readJson("labels", "?stage=pending")).toMatchObject({ version: 3, value: "three" });
  });

  it("promote moves the labels; promoting the same version again is a no-op", async () => {
    const promoted = await post("labels", "promote", { version: 3 });
    expect(await promoted.json()).toEqual({ name: "labels", current: 3, previous: 2 });
    expect(await readJson("labels")).toMatchObject({ version: 3, value: "three" });
    expect(await readJson("labels", "?stage=previous")).toMatchObject({ version: 2, value: "two" });
    expect((await read("labels", "?stage=pending")).status).toBe(404);
    expect(await (await post("labels", "promote", { version: 3 })).json()).toEqual({
      name: "labels",
      current: 3,
      previous: 2,
    });
    expect((await post("labels", "promote")).status).toBe(409);
  });

  it("rollback makes previous current again, and later versions never reuse a number", async () => {
    expect(await (await post("labels", "rollback", { version: 2 })).json()).toEqual({
      name: "labels",
      current: 2,
      previous: 3,
    });
    // A retried rollback finds version 2 current and leaves the labels alone.
    expect(await (await post("labels", "rollback", { version: 2 })).json()).toEqual({
      name: "labels",
      current: 2,
      previous: 3,
    });
    expect((await post("labels", "rollback")).status).toBe(400);
    expect((await post("labels", "rollback", { version: 1 })).status).toBe(409);
    expect(await readJson("labels")).toMatchObject({ version: 2, value: "two" });
    expect(await readJson("labels", "?version=3")).toMatchObject({ version: 3, value: "three" });
    expect(await (await put("labels", { value: "four" })).json()).toEqual({ name: "labels", version: 4 });
    expect(await readJson("labels", "?stage=previous")).toMatchObject({ version: 2, value: "two" });
    expect(await readJson("labels", "?version=3")).toMatchObject({ version: 3, value: "three" });
  });
});

describe("clientRequestToken makes writes idempotent", () => {
  it("the same token with the same value is a no-op; with another value it is a 409", async () => {
    const first = await put("idem", { value: "alpha", clientRequestToken: "token-0001" });
    expect(await first.json()).toEqual({ name: "idem", version: 1 });
    expect((await put("idem", { value: "beta", clientRequestToken: "token-0002" })).status).toBe(200);
    // A retry of the first write after the second: answered from the archive, nothing new written.
    expect(await (await put("idem", { value: "alpha", clientRequestToken: "token-0001" })).json()).toEqual({
      name: "idem",
      version: 1,
    });
    expect(await (await put("idem", { value: "beta", clientRequestToken: "token-0002" })).json()).toEqual({
      name: "idem",
      version: 2,
    });
    const conflict = await put("idem", { value: "gamma", clientRequestToken: "token-0002" });
    expect(conflict.status).toBe(409);
    expect(conflict.text).not.toContain("gamma");
    expect(conflict.text).not.toContain("beta");
    expect(await readJson("idem")).toMatchObject({ version: 2, value: "beta" });
    expect((await read("idem", "?version=3")).status).toBe(404);
  });
});

describe("rotation policy and the due listing", () => {
  it("rotationPeriodDays gives a rotationDueAt, shown in the listing and the due route", async () => {
    expect((await put("periodic", { value: "v1" })).status).toBe(200);
    const set = await (await policy("periodic", { rotationPeriodDays: 30 })).json();
    expect(set.rotationPeriodDays).toBe(30);
    const dueAt = Date.parse(set.rotationDueAt);
    expect(Math.abs(dueAt - (Date.now() + 30 * DAY_MS))).toBeLessThan(60_000);
    const list = await (await h.call("GET", `/v1/tenants/${TENANT}/secrets`, { token: admin })).json();
    expect(list.secrets.find((s: { name: string }) => s.name === "periodic").rotationDueAt).toBe(
      set.rotationDueAt,
    );
    const soon = await (
      await h.call("GET", `/v1/tenants/${TENANT}/rotation/due?withinDays=31`, { token: admin })
    ).json();
    expect(soon.secrets).toContainEqual(
      expect.objectContaining({
        name: "periodic",
        overdue: false,
        rotatedBy: "byok",
        rotationDueAt: set.rotationDueAt,
      }),
    );
    const now = await (
      await h.call("GET", `/v1/tenants/${TENANT}/rotation/due?withinDays=0`, { token: admin })
    ).json();
    expect(now.secrets.map((s: { name: string }) => s.name)).not.toContain("periodic");
  });

  it("an overdue secret is flagged; null clears the policy", async () => {
    await makeDue("periodic", 2);
    const due = await (
      await h.call("GET", `/v1/tenants/${TENANT}/rotation/due?withinDays=0`, { token: admin })
    ).json();
    expect(due.secrets).toContainEqual(expect.objectContaining({ name: "periodic", overdue: true }));
    expect(await (await policy("periodic", { rotationPeriodDays: null })).json()).toEqual({
      name: "periodic",
    });
    const after = await (
      await h.call("GET", `/v1/tenants/${TENANT}/rotation/due?withinDays=9999`, { token: admin })
    ).json();
    expect(after.secrets.map((s: { name: string }) => s.name)).not.toContain("periodic");
  });
});

describe("generated secrets rotate themselves in idempotent steps", () => {
  it("rotate creates, tests and promotes a generated value; the same token again changes nothing", async () => {
    expect((await put("generated", { value: "seed" })).status).toBe(200);
    const set = await policy("generated", {
      generator: { kind: "password", length: 24 },
      rotationPeriodDays: 7,
    });
    expect(set.status).toBe(200);
    const rotated = await (await post("generated", "rotate", { clientRequestToken: "rotate-0001" })).json();
    expect(rotated).toEqual({ name: "generated", status: "rotated", version: 2, previousVersion: 1 });
    const current = await readJson("generated");
    expect(current.value).toHaveLength(24);
    expect(current.value).not.toBe("seed");
    expect(await readJson("generated", "?stage=previous")).toMatchObject({ version: 1, value: "seed" });
    expect(await (await post("generated", "rotate", { clientRequestToken: "rotate-0001" })).json()).toEqual(
      rotated,
    );
    expect((await readJson("generated")).version).toBe(2);
    const next = await (await post("generated", "rotate", { clientRequestToken: "rotate-0002" })).json();
    expect(next).toMatchObject({ status: "rotated", version: 3, previousVersion: 2 });
    // A token from an earlier, finished rotation is not reused for a new one.
    expect((await post("generated", "rotate", { clientRequestToken: "rotate-0001" })).status).toBe(409);
  });

  it("a rotation that crashes after k writes keeps every label readable, refuses a second rotation, and resumes", async () => {
    // Its writes: the head with the pending value, the archive copy of the current one, the promotion.
    for (let k = 0; k < 3; k += 1) {
      const name = `gen-crash-${k}`;
      expect((await put(name, { value: `${name}-v1` })).status).toBe(200);
      expect((await put(name, { value: `${name}-v2` })).status).toBe(200);
      expect((await policy(name, { generator: { kind: "token", length: 32 } })).status).toBe(200);
      const crash = crashAfterWrites(h.table, k);
      const crashed = await post(name, "rotate", { clientRequestToken: `crash-token-${k}` });
      crash.remove();
      expect(crash.refused, `k=${k}`).toBeGreaterThan(0);
      expect(crashed.status, `k=${k}`).toBe(503);

      expect(await readJson(name), `k=${k}`).toMatchObject({ version: 2, value: `${name}-v2` });
      expect(await readJson(name, "?stage=previous")).toMatchObject({ version: 1, value: `${name}-v1` });
      const pending = await read(name, "?stage=pending");
      let staged: string | undefined;
      if (pending.status === 200) {
        staged = (await pending.json()).value;
        expect(staged).toHaveLength(32);
        // While it is in flight, another rotation is refused.
        expect((await post(name, "rotate", { clientRequestToken: `other-token-${k}` })).status).toBe(409);
      } else {
        expect(pending.status).toBe(404);
      }

      const resumed = await (await post(name, "rotate", { clientRequestToken: `crash-token-${k}` })).json();
      expect(resumed, `k=${k}`).toEqual({ name, status: "rotated", version: 3, previousVersion: 2 });
      const current = await readJson(name);
      if (staged !== undefined) expect(current.value).toBe(staged);
      expect(current.value).toHaveLength(32);
      expect(await readJson(name, "?stage=previous")).toMatchObject({ version: 2, value: `${name}-v2` });
      expect((await read(name, "?stage=pending")).status).toBe(404);
    }
  });
});

describe("bring-your-own-key secrets and the scheduled runner", () => {
  it("a due BYOK secret is announced once; the operator's pending value, once promoted, resets the clock", async () => {
    expect((await put("provider-key", { value: "pk-old" })).status).toBe(200);
    expect((await policy("provider-key", { rotationPeriodDays: 30 })).status).toBe(200);
    await makeDue("provider-key");
    published.length = 0;
    const due = h.runtime.metrics.count("RotationsDue");
    const first = await h.runtime.scheduledWork.run(deadlineIn(10_000), "byok-1");
    expect(first.due).toMatchObject({ found: 1, notified: 1, rotated: 0, failed: 0, scanComplete: true });
    expect(h.runtime.metrics.count("RotationsDue")).toBe(due + 1);
    expect(published).toEqual([
      {
        detailType: "Secret Rotation Due",
        detail: expect.objectContaining({ tenantId: TENANT, secretName: "provider-key" }),
      },
    ]);
    await h.runtime.scheduledWork.run(deadlineIn(10_000), "byok-2");
    expect(published).toHaveLength(1);

    expect(
      (
        await put("provider-key", {
          value: "pk-new",
          stage: "pending",
          clientRequestToken: "byok-rotation-1",
        })
      ).status,
    ).toBe(200);
    expect(await readJson("provider-key", "?stage=pending")).toMatchObject({ value: "pk-new" });
    expect((await post("provider-key", "promote")).status).toBe(200);
    expect(await readJson("provider-key")).toMatchObject({ version: 2, value: "pk-new" });
    const dueNow = await (
      await h.call("GET", `/v1/tenants/${TENANT}/rotation/due?withinDays=0`, { token: admin })
    ).json();
    expect(dueNow.secrets.map((s: { name: string }) => s.name)).not.toContain("provider-key");
    expect(JSON.stringify(published)).not.toContain("pk-");
  });

  it("a due generated secret is rotated by the runner, once per due date", async () => {
    expect((await put("auto", { value: "auto-seed" })).status).toBe(200);
    expect(
      (await policy("auto", { generator: { kind: "token", length: 40 }, rotationPeriodDays: 1 })).status,
    ).toBe(200);
    await makeDue("auto");
    published.length = 0;
    const completed = h.runtime.metrics.count("RotationsCompleted");
    const run = await h.runtime.scheduledWork.run(deadlineIn(10_000), "auto-1");
    expect(run.due).toMatchObject({ found: 1, rotated: 1, failed: 0 });
    expect(h.runtime.metrics.count("RotationsCompleted")).toBe(completed + 1);
    expect(await readJson("auto")).toMatchObject({ version: 2 });
    expect(published).toContainEqual({
      detailType: "Secret Rotated",
      detail: { tenantId: TENANT, secretName: "auto", version: 2 },
    });
    const again = await h.runtime.scheduledWork.run(deadlineIn(10_000), "auto-2");
    expect(again.due.found).toBe(0);
  });
});
