import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../../functions/api/app.ts";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { ConfigError } from "../../shared/domain/errors.ts";
import { EmfMetrics } from "../../shared/observability/emf-metrics.ts";
import { METRIC_NAMES } from "../../shared/observability/metrics.ts";
import { createLambdaRuntime } from "../../shared/runtime/lambda.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { flipEnvelopeBit, headKey } from "../../testing/faults.ts";
import {
  DUMMY_CREDENTIALS,
  randomKek,
  readResponse,
  startHarness,
  startStore,
} from "../../testing/harness.ts";

const SECRET = "sk-metrics-canary-4f1e";
const kek = randomKek();
const kekBase64 = Buffer.from(kek).toString("base64");
let store: { dynamo: LocalDynamo; table: Table };

/** Lines written to stdout while `work` runs: where Powertools Metrics writes its EMF. */
async function captureStdout(work: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [];
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: any) => {
    lines.push(...String(chunk).split("\n").filter(Boolean));
    return true;
  });
  try {
    await work();
  } finally {
    spy.mockRestore();
  }
  return lines;
}

/** The EMF documents among captured lines, by metric name. */
function emf(lines: string[]): Record<string, any>[] {
  return lines
    .map((line) => {
      try {
        return JSON.parse(line);
      } catch {
        return undefined;
      }
    })
    .filter((doc) => doc?._aws?.CloudWatchMetrics !== undefined);
}

beforeAll(async () => {
  store = await startStore();
});
afterAll(async () => {
  await store.dynamo.close();
});
afterEach(() => {
  vi.unstubAllEnvs();
});

describe("GET /metrics on the local server", () => {
  it("lists every metric in Prometheus text format; a tampered ciphertext increments DecryptFailures", async () => {
    const h = await startHarness({ store, keyring: new LocalKeyring({ active: kek, previous: [] }) });
    const app = createApp(h.runtime, { exposeMetrics: true });
    const scrape = async () => readResponse(await app.request("/metrics"));
    const admin = await h.token("admin");
    await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "metrics" } });
    await h.call("PUT", "/v1/tenants/metrics/secrets/key", { token: admin, body: { value: SECRET } });

    const before = await scrape();
    expect(before.status).toBe(200);
    expect(before.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(before.text).toContain(
      "# TYPE strongbox_decrypt_failures_total counter\nstrongbox_decrypt_failures_total 0\n",
    );
    expect(before.text).toContain("# TYPE strongbox_kek_configured gauge\n");
    for (const name of METRIC_NAMES) {
      const snake = name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
      expect(before.text).toMatch(new RegExp(`^strongbox_${snake}(_total)? \\d+$`, "m"));
    }

    await flipEnvelopeBit(store.table, headKey("metrics", "key"), 30);
    const read = await h.call("GET", "/v1/tenants/metrics/secrets/key", {
      token: admin,
      headers: { "x-audit-reason": "metrics test" },
    });
    expect(read.status).toBe(500);
    expect((await read.json()).error.code).toBe("decrypt_failed");
    const denied = await h.call("GET", "/v1/tenants/metrics/secrets", {});
    expect(denied.status).toBe(401);

    const after = await scrape();
    expect(after.text).toContain("strongbox_decrypt_failures_total 1\n");
    expect(after.text).toContain("strongbox_auth_denied_total 1\n");
    for (const canary of [SECRET, admin, kekBase64, "metrics"]) expect(after.text).not.toContain(canary);
  });

  it("is not served unless the server asks for it (the Lambda app does not)", async () => {
    const h = await startHarness({ store });
    expect((await h.call("GET", "/metrics")).status).toBe(404);
  });
});

describe("CloudWatch EMF on Lambda", () => {
  it("each increment is one EMF document in namespace Strongbox, written to stdout", async () => {
    const metrics = new EmfMetrics();
    const lines = await captureStdout(async () => {
      metrics.increment("KmsAnomalies");
      metrics.increment("AuditWriteFailures", 2);
    });
    const docs = emf(lines);
    expect(docs).toHaveLength(2);
    expect(docs[0]?._aws.CloudWatchMetrics[0]).toMatchObject({
      Namespace: "Strongbox",
      Metrics: [{ Name: "KmsAnomalies", Unit: "Count" }],
    });
    expect(docs[0]?.KmsAnomalies).toBe(1);
    expect(docs[1]?.AuditWriteFailures).toBe(2);
    expect(metrics.count("AuditWriteFailures")).toBe(2);
  });

  it("names the environment as a dimension beside the service, as the alarms expect", async () => {
    const lines = await captureStdout(async () => new EmfMetrics("staging").increment("DecryptFailures"));
    const [doc] = emf(lines);
    expect(doc?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([["service", "environment"]]);
    expect(doc).toMatchObject({ service: "strongbox", environment: "staging", DecryptFailures: 1 });
  });

  it("a Lambda cold start emits KekConfigured 1, and a tampered ciphertext emits DecryptFailures", async () => {
    vi.stubEnv("AWS_ACCESS_KEY_ID", DUMMY_CREDENTIALS.accessKeyId);
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", DUMMY_CREDENTIALS.secretAccessKey);
    const env = {
      CREDENTIALS_KEK: kekBase64,
      DYNAMODB_ENDPOINT: store.dynamo.endpoint,
      TABLE_NAME: store.table.name,
    };
    let runtime: Awaited<ReturnType<typeof createLambdaRuntime>> | undefined;
    const coldStart = emf(await captureStdout(async () => (runtime = await createLambdaRuntime(env))));
    expect(coldStart.map((doc) => doc.KekConfigured)).toEqual([1]);
    if (runtime === undefined) throw new Error("no runtime");

    const h = await startHarness({ store, keyring: new LocalKeyring({ active: kek, previous: [] }) });
    const admin = await h.token("admin");
    await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "emf" } });
    await h.call("PUT", "/v1/tenants/emf/secrets/key", { token: admin, body: { value: SECRET } });
    await flipEnvelopeBit(store.table, headKey("emf", "key"), 30);
    const app = createApp(runtime);
    let status = 0;
    const lines = await captureStdout(async () => {
      const response = await app.request("/v1/tenants/emf/secrets/key", {
        headers: { authorization: `Bearer ${admin}`, "x-audit-reason": "emf test" },
      });
      status = response.status;
    });
    expect(status).toBe(500);
    const docs = emf(lines);
    expect(docs.map((doc) => doc.DecryptFailures)).toEqual([1]);
    for (const canary of [SECRET, admin, kekBase64]) expect(lines.join("\n")).not.toContain(canary);
  });

  it("a cold start without a KEK emits KekConfigured 0 and then refuses to start", async () => {
    const lines = await captureStdout(async () => {
      await expect(createLambdaRuntime({ NODE_ENV: "production" })).rejects.toBeInstanceOf(ConfigError);
    });
    expect(emf(lines).map((doc) => doc.KekConfigured)).toEqual([0]);
  });
});

describe("/health", () => {
  it("public /health says only whether the service is usable; the report is admin-only at /v1/health", async () => {
    const h = await startHarness({ store, keyring: new LocalKeyring({ active: kek, previous: [] }) });
    const response = await h.call("GET", "/health");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
    expect((await h.call("GET", "/v1/health")).status).toBe(401);
    const operator = await h.token("operator", ["healthy"]);
    expect((await h.call("GET", "/v1/health", { token: operator })).status).toBe(403);
  });

  it("/v1/health shows the KEK fingerprint, keyring and store reachability and the system chain's head, never key material or a tenant", async () => {
    const h = await startHarness({ store, keyring: new LocalKeyring({ active: kek, previous: [] }) });
    const admin = await h.token("admin");
    await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "healthy" } });
    await h.call("POST", "/v1/tokens", {
      token: admin,
      body: { role: "runner", tenants: ["healthy"], ttlSeconds: 600 },
    });
    const response = await h.call("GET", "/v1/health", { token: admin });
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body.keyring).toEqual({ kind: "local", activeKekId: h.runtime.keyring.activeKekId, status: "ok" });
    expect(body.keyring.activeKekId).toMatch(/^kek-[0-9a-f]{16}$/);
    expect(body.store).toEqual({ status: "ok" });
    const heads = body.audit.heads as { scope: string; sequence: number; hash: string }[];
    expect(heads[0]).toMatchObject({ scope: "_system", sequence: expect.any(Number) });
    // Per-tenant heads are behind GET /v1/tenants/{tenantId}/audit/head.
    expect(heads.map((head) => head.scope)).toEqual(["_system"]);
    expect(body.audit.knownChains).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(body.audit)).not.toContain("healthy");
    const head = await h.call("GET", "/v1/tenants/healthy/audit/head", { token: admin });
    expect(head.status).toBe(200);
    expect(await head.json()).toEqual({
      scope: "healthy",
      head: { sequence: 2, hash: expect.stringMatching(/^[0-9a-f]{64}$/) },
      appendedHere: { sequence: 2, hash: expect.stringMatching(/^[0-9a-f]{64}$/) },
    });
    expect(response.text).not.toContain(kekBase64);
    expect(response.text).not.toContain(admin);
  });
});
