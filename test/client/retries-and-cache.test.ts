import { describe, expect, it } from "vitest";
import {
  InvalidRequestError,
  RotationAwareCache,
  StoreUnavailableError,
  StrongboxClient,
  StrongboxNetworkError,
  UnexpectedResponseError,
} from "../../client/src/index.ts";

// The retry policy and the cache's clock, which the real server cannot be made to exercise on cue: a
// scripted fetch stands in for the network (a stand-in for 429s, 503s and dropped connections, not for
// the API, whose behaviour test/client/real-server.test.ts checks against the real local server).

type Step = number | "drop";
function scripted(steps: Step[]) {
  const seen: Request[] = [];
  const fetch = async (input: string | URL | Request) => {
    const request = input as Request;
    seen.push(request);
    const step = steps[Math.min(seen.length - 1, steps.length - 1)] ?? "drop";
    if (step === "drop") throw new TypeError("fetch failed");
    const body =
      step === 200
        ? { name: "n", version: 1, value: "v", createdAt: "2026-01-01T00:00:00Z" }
        : step === 503
          ? { error: { code: "store_unavailable", message: "DynamoDB could not be reached" } }
          : step === 400
            ? { error: { code: "invalid_request", message: "bad" } }
            : { message: "Too Many Requests" };
    return new Response(JSON.stringify(body), {
      status: step,
      headers: { "x-request-id": `req-${seen.length}` },
    });
  };
  return { fetch: fetch as typeof globalThis.fetch, seen };
}

function client(steps: Step[], maxAttempts = 3) {
  const net = scripted(steps);
  const sleeps: number[] = [];
  const c = new StrongboxClient({
    baseUrl: "https://strongbox.example.com/prod",
    token: "sbx_test",
    reason: "test",
    cache: false,
    fetch: net.fetch,
    retry: { maxAttempts, baseDelayMs: 100, maxDelayMs: 1_000 },
    random: () => 0.999,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
  return { c, net, sleeps };
}

describe("retries", () => {
  it("a read is retried on 429, 503 and a dropped connection, with full-jitter backoff under a doubling cap", async () => {
    const { c, net, sleeps } = client([429, 503, "drop", 200], 4);
    expect((await c.getSecret("t", "n")).value).toBe("v");
    expect(net.seen).toHaveLength(4);
    expect(sleeps.map(Math.round)).toEqual([100, 200, 400]);
    expect(net.seen[0]?.url).toBe("https://strongbox.example.com/prod/v1/tenants/t/secrets/n");
    expect(net.seen[0]?.headers.get("authorization")).toBe("Bearer sbx_test");
  });

  it("stops at the bound with the typed error of the last answer", async () => {
    const { c, net } = client([503]);
    await expect(c.getSecret("t", "n")).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(net.seen).toHaveLength(3);
    const dropped = client(["drop"]);
    const error = await dropped.c.getSecret("t", "n").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StrongboxNetworkError);
    expect((error as StrongboxNetworkError).attempts).toBe(3);
  });

  it("never retries a 4xx, and types API Gateway's own 429 body as unexpected", async () => {
    const { c, net } = client([400, 200]);
    const error = await c.getSecret("t", "n").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidRequestError);
    expect((error as InvalidRequestError).requestId).toBe("req-1");
    expect(net.seen).toHaveLength(1);
    await expect(client([429], 1).c.getSecret("t", "n")).rejects.toBeInstanceOf(UnexpectedResponseError);
  });

  it("retries a write only with a clientRequestToken, the same one on every attempt", async () => {
    const { c, net } = client([503, 200]);
    await c.putSecret("t", "n", { value: "secret" });
    expect(net.seen).toHaveLength(2);
    const tokens = await Promise.all(net.seen.map(async (r) => ((await r.json()) as any).clientRequestToken));
    expect(tokens[0]).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
    expect(tokens[1]).toBe(tokens[0]);

    for (const call of [
      (x: StrongboxClient) => x.promoteSecret("t", "n", { version: 2 }),
      (x: StrongboxClient) => x.rollbackSecret("t", "n", 1),
      (x: StrongboxClient) => x.setRotationPolicy("t", "n", { rotationPeriodDays: 30 }),
      (x: StrongboxClient) => x.rotateDek("t"),
      (x: StrongboxClient) => x.deleteSecret("t", "n"),
    ]) {
      const once = client([503, 200]);
      await expect(call(once.c)).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(once.net.seen).toHaveLength(1);
    }
  });
});

describe("the cache's lifetime", () => {
  const now = Date.parse("2026-06-01T00:00:00Z");
  const cache = new RotationAwareCache(
    { maxTtlMs: 60_000, pendingTtlMs: 2_000, overdueTtlMs: 10_000 },
    () => now,
    () => {},
  );
  const at = (ms: number) => new Date(now + ms).toISOString();

  it("is the earliest of the maximum TTL, the rotation due date and a pending version's TTL", () => {
    expect(cache.lifetime({}, now)).toBe(60_000);
    expect(cache.lifetime({ rotationDueAt: at(3_600_000) }, now)).toBe(60_000);
    expect(cache.lifetime({ rotationDueAt: at(5_000) }, now)).toBe(5_000);
    expect(cache.lifetime({ pendingVersion: 3 }, now)).toBe(2_000);
    expect(cache.lifetime({ rotationDueAt: at(1_000), pendingVersion: 3 }, now)).toBe(1_000);
    // Past due and not yet rotated: asked again at the overdue TTL, not on every call.
    expect(cache.lifetime({ rotationDueAt: at(-1) }, now)).toBe(10_000);
  });

  it("refreshes ahead of expiry in the background and keeps serving meanwhile", async () => {
    let clock = 0;
    let loads = 0;
    const c = new RotationAwareCache<{ v: number; pendingVersion?: number }>(
      { maxTtlMs: 1_000 },
      () => clock,
      () => {},
    );
    const load = async () => ({ v: ++loads });
    expect(await c.get("k", load)).toEqual({ v: 1 });
    clock = 700;
    expect(c.get("k", load)).toEqual({ v: 1 });
    expect(loads).toBe(1);
    clock = 850; // past 80 % of its life: served at once, refreshed behind it
    expect(c.get("k", load)).toEqual({ v: 1 });
    await Promise.resolve();
    expect(loads).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(c.get("k", load)).toEqual({ v: 2 });
  });
});

describe("SigV4", () => {
  it("signs every attempt for execute-api in the configured region, with the session token", async () => {
    const net = scripted([503, 200]);
    const c = new StrongboxClient({
      baseUrl: "https://abc123.execute-api.eu-west-1.amazonaws.com",
      sigv4: {
        region: "eu-west-1",
        credentials: async () => ({
          accessKeyId: "AKIDEXAMPLE",
          secretAccessKey: "secret",
          sessionToken: "session",
        }),
      },
      reason: "test",
      cache: false,
      fetch: net.fetch,
      sleep: async () => {},
    });
    await c.putSecret("t", "n", { value: "v" });
    expect(net.seen).toHaveLength(2);
    for (const request of net.seen) {
      expect(request.headers.get("authorization")).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}$/,
      );
      expect(request.headers.get("x-amz-security-token")).toBe("session");
      expect(request.headers.get("x-amz-date")).toMatch(/^\d{8}T\d{6}Z$/);
      expect(await request.text()).toContain('"value":"v"');
    }
  });

  it("refuses a region that is not one, before any request", () => {
    expect(
      () => new StrongboxClient({ baseUrl: "https://example.com", sigv4: { region: "Europe" } }),
    ).toThrow(/region/);
  });
});
