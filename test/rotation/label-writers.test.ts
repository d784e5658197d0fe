import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deadlineIn } from "../../shared/domain/work.ts";
import { TenantRepository } from "../../shared/storage/tenant-repository.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";
import { storedDekVersions } from "../../testing/rotation-fixtures.ts";

/*
 * Writers that carry envelopes they read (policy changes carry the current value, pending writes carry
 * current, promotions carry pending, generated rotations stage a pending value beside current) run
 * against one tenant while its DEK is rotated twice and swept to retirement. Each writer owns its
 * secret, so every request must succeed; afterwards every version still reads, and no ciphertext is
 * left under a retired DEK.
 */

const TENANT = "labels";
const REASON = { "x-audit-reason": "label writers test" };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let h: Harness;
let admin: string;

beforeAll(async () => {
  h = await startHarness({ env: { ROTATION_PAGE_SIZE: "3" }, rotation: { retireGraceMs: 1000 } });
  admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } })).status).toBe(
    201,
  );
});
afterAll(() => h?.close());

const secretPath = (name: string) => `/v1/tenants/${TENANT}/secrets/${name}`;

describe("label, policy and pending writers while the DEK rotates", () => {
  it("all succeed, every version reads back, and nothing is left under a retired DEK", async () => {
    const errors: string[] = [];
    const expect200 = async (what: string, response: Promise<{ status: number; text: string }>) => {
      const got = await response;
      if (got.status !== 200) errors.push(`${what}: ${got.status} ${got.text}`);
      return got.status === 200;
    };
    const policyNames = ["policy-0", "policy-1"];
    const stagedNames = ["staged-0", "staged-1"];
    const generated = "generated";
    for (const name of [...policyNames, ...stagedNames, generated]) {
      await expect200(
        `seed ${name}`,
        h.call("PUT", secretPath(name), { token: admin, body: { value: `${name}:1` } }),
      );
    }
    await expect200(
      "generator",
      h.call("PUT", `${secretPath(generated)}/rotation`, {
        token: admin,
        body: { generator: { kind: "token", length: 32 } },
      }),
    );

    let stop = false;
    const counts = { policy: 0, staged: 0, generated: 0 };
    const staged = new Map(stagedNames.map((name) => [name, 1]));
    let generatedVersion = 1;
    const policyWriter = async (name: string) => {
      for (let days = 1; !stop; days = (days % 300) + 1) {
        const body = { rotationPeriodDays: days };
        if (
          await expect200(
            `policy ${name}`,
            h.call("PUT", `${secretPath(name)}/rotation`, { token: admin, body }),
          )
        )
          counts.policy += 1;
      }
    };
    const stagedWriter = async (name: string) => {
      while (!stop) {
        const version = (staged.get(name) ?? 0) + 1;
        const body = { value: `${name}:${version}`, stage: "pending" };
        if (!(await expect200(`pending ${name}`, h.call("PUT", secretPath(name), { token: admin, body }))))
          return;
        const promoted = h.call("POST", `${secretPath(name)}/promote`, { token: admin, body: { version } });
        if (!(await expect200(`promote ${name}`, promoted))) return;
        staged.set(name, version);
        counts.staged += 1;
      }
    };
    const generatedWriter = async () => {
      while (!stop) {
        const rotated = h.call("POST", `${secretPath(generated)}/rotate`, { token: admin, body: {} });
        if (!(await expect200("rotate generated", rotated))) return;
        generatedVersion += 1;
        counts.generated += 1;
      }
    };
    const workers = [...policyNames.map(policyWriter), ...stagedNames.map(stagedWriter), generatedWriter()];

    const sweepToRetirement = async () => {
      for (let run = 0; run < 200; run += 1) {
        if (!(await h.runtime.dekSweep.pendingSweeps()).includes(TENANT)) return;
        await h.runtime.scheduledWork.run(deadlineIn(5_000), `labels-${run}`);
        await sleep(50);
      }
    };
    try {
      for (const expected of [2, 3]) {
        const rotated = await h.call("POST", `/v1/tenants/${TENANT}/rotate-dek`, { token: admin });
        expect(await rotated.json()).toEqual({ tenantId: TENANT, dekVersion: expected });
        await sweepToRetirement();
      }
    } finally {
      stop = true;
      await Promise.all(workers);
    }

    expect(errors).toEqual([]);
    expect(h.runtime.metrics.count("RotationFailures")).toBe(0);
    expect(counts.policy).toBeGreaterThan(10);
    expect(counts.staged).toBeGreaterThan(5);
    expect(counts.generated).toBeGreaterThan(5);

    for (const name of stagedNames) {
      const last = staged.get(name) ?? 1;
      for (let version = 1; version <= last; version += 1) {
        const got = await h.call("GET", `${secretPath(name)}?version=${version}`, {
          token: admin,
          headers: REASON,
        });
        expect(await got.json()).toMatchObject({ version, value: `${name}:${version}` });
      }
      const previous = await h.call("GET", `${secretPath(name)}?stage=previous`, {
        token: admin,
        headers: REASON,
      });
      expect(await previous.json()).toMatchObject({ version: last - 1, value: `${name}:${last - 1}` });
    }
    for (const name of policyNames) {
      const got = await h.call("GET", secretPath(name), { token: admin, headers: REASON });
      expect(await got.json()).toMatchObject({ version: 1, value: `${name}:1` });
    }
    for (let version = 1; version <= generatedVersion; version += 1) {
      const got = await h.call("GET", `${secretPath(generated)}?version=${version}`, {
        token: admin,
        headers: REASON,
      });
      expect(got.status, got.text).toBe(200);
    }
    expect(Object.keys(await storedDekVersions(h.table, TENANT))).toEqual(["3"]);
    const tenant = await new TenantRepository(h.table).get(TENANT);
    expect(tenant?.retiredDataKeys?.map((key) => key.version)).toEqual([1, 2]);
  }, 60_000);
});
