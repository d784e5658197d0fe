import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainKeys } from "../../shared/crypto/chain-keys.ts";
import type { Keyring } from "../../shared/crypto/keyring.ts";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { tenantKey } from "../../testing/faults.ts";
import { type Harness, randomKek, startHarness, startStore } from "../../testing/harness.ts";

/*
 * The bounds on DEK use: the minimum interval between rotations on request, the rotation period the
 * scheduled runner keeps, and the seal counter that forces a rotation long before AES-GCM's random-IV
 * limit. Time passing is stood in for by moving `dekRotatedAt` back in the table.
 */

const REASON = { "x-audit-reason": "dek bounds test" };

/** A real local keyring whose GenerateDataKey calls are counted: what each rotation costs on KMS. */
function countingKeyring(): { keyring: Keyring; chainKeys: ChainKeys; generated: () => number } {
  const inner = new LocalKeyring({ active: randomKek(), previous: [] });
  let generated = 0;
  const keyring: Keyring = {
    kind: inner.kind,
    activeKekId: inner.activeKekId,
    kekIds: inner.kekIds,
    generateDataKey: (context) => {
      generated += 1;
      return inner.generateDataKey(context);
    },
    unwrap: (wrapped, context) => inner.unwrap(wrapped, context),
    rewrap: (wrapped, context) => inner.rewrap(wrapped, context),
    probe: () => inner.probe(),
  };
  return { keyring, chainKeys: inner.chainKeys(), generated: () => generated };
}

async function backdateDek(h: Harness, tenantId: string, msAgo: number) {
  await h.table.doc.send(
    new UpdateCommand({
      TableName: h.table.name,
      Key: tenantKey(tenantId),
      UpdateExpression: "SET dekRotatedAt = :at",
      ExpressionAttributeValues: { ":at": new Date(Date.now() - msAgo).toISOString() },
    }),
  );
}

describe("rotate-dek has a per-tenant minimum interval", () => {
  let store: Awaited<ReturnType<typeof startStore>>;
  let a: Harness;
  let b: Harness;
  let admin: string;
  let counting: ReturnType<typeof countingKeyring>;
  const env = { DEK_ROTATE_MIN_INTERVAL_SECONDS: "600" };

  beforeAll(async () => {
    store = await startStore();
    counting = countingKeyring();
    // Two runtimes on one table: two Lambda instances, which share only the tenant item.
    a = await startHarness({ store, keyring: counting.keyring, chainKeys: counting.chainKeys, env });
    b = await startHarness({ store, keyring: counting.keyring, chainKeys: counting.chainKeys, env });
    admin = await a.token("admin");
    expect((await a.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "rl" } })).status).toBe(
      201,
    );
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await store?.dynamo.close();
  });

  it("refuses a second rotation within the interval with 429 and Retry-After, on any instance, at no KMS cost", async () => {
    const first = await a.call("POST", "/v1/tenants/rl/rotate-dek", { token: admin });
    expect(await first.json()).toEqual({ tenantId: "rl", dekVersion: 2 });
    const generated = counting.generated();
    for (const instance of [a, b]) {
      const again = await instance.call("POST", "/v1/tenants/rl/rotate-dek", { token: admin });
      expect(again.status).toBe(429);
      expect((await again.json()).error.code).toBe("rate_limited");
      const retryAfter = Number(again.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThan(590);
      expect(retryAfter).toBeLessThanOrEqual(600);
    }
    expect(counting.generated()).toBe(generated);
    const status = await (await b.call("GET", "/v1/tenants/rl/rotation", { token: admin })).json();
    expect(status.currentDekVersion).toBe(2);
    expect(status.sweep).toMatchObject({ targetDekVersion: 2 });
  });

  it("concurrent rotations: one rotates, the rest get 429", async () => {
    await backdateDek(a, "rl", 601_000);
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        (i % 2 === 0 ? a : b).call("POST", "/v1/tenants/rl/rotate-dek", { token: admin }),
      ),
    );
    expect(answers.map((r) => r.status).sort()).toEqual([200, 429, 429, 429, 429, 429]);
    const status = await (
      await a.call("GET", "/v1/tenants/rl/rotation", { token: admin, headers: REASON })
    ).json();
    expect(status.currentDekVersion).toBe(3);
  });
});
