import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, startHarness } from "../../testing/harness.ts";

const TENANT = "racers";
const REASON = { "x-audit-reason": "concurrency test" };
/** The concurrency docs/api.md promises plain writes on one secret without a spurious 409. */
const WRITERS = 64;

let h: Harness;
let admin: string;

const path = (name: string, suffix = "") => `/v1/tenants/${TENANT}/secrets/${name}${suffix}`;

beforeAll(async () => {
  h = await startHarness();
  admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } })).status).toBe(
    201,
  );
});

afterAll(async () => {
  await h.close();
});

describe("concurrent writers on one secret", () => {
  it(`${WRITERS} parallel plain PUTs all succeed, each as its own version, none lost`, async () => {
    expect((await h.call("PUT", path("k"), { token: admin, body: { value: "initial" } })).status).toBe(200);
    const responses = await Promise.all(
      Array.from({ length: WRITERS }, (_, i) =>
        h.call("PUT", path("k"), { token: admin, body: { value: `value-${i}` } }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(WRITERS).fill(200));
    const written = await Promise.all(responses.map(async (r) => (await r.json()).version as number));
    expect([...written].sort((a, b) => a - b)).toEqual(Array.from({ length: WRITERS }, (_, i) => i + 2));

    const head = await (await h.call("GET", path("k"), { token: admin, headers: REASON })).json();
    expect(head.version).toBe(WRITERS + 1);
    for (const [i, version] of written.entries()) {
      const read = await h.call("GET", `${path("k")}?version=${version}`, { token: admin, headers: REASON });
      expect(read.status).toBe(200);
      expect((await read.json()).value).toBe(`value-${i}`);
    }
    // 64 writers racing with jittered retries, then 64 reads: a guard against a hang, not a speed
    // target, and a loaded 2-core runner can take far longer than the 30 s default.
  }, 120_000);

  it("identical concurrent rollbacks all succeed: the ones that find the target current change nothing", async () => {
    expect((await h.call("PUT", path("r"), { token: admin, body: { value: "one" } })).status).toBe(200);
    expect((await h.call("PUT", path("r"), { token: admin, body: { value: "two" } })).status).toBe(200);
    const responses = await Promise.all(
      Array.from({ length: 10 }, () =>
        h.call("POST", path("r", "/rollback"), { token: admin, body: { version: 1 } }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    for (const r of responses) expect(await r.json()).toEqual({ name: "r", current: 1, previous: 2 });
    const read = await (await h.call("GET", path("r"), { token: admin, headers: REASON })).json();
    expect(read).toMatchObject({ version: 1, value: "one" });
  });
});
