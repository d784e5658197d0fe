import { KMSClient } from "@aws-sdk/client-kms";
import { KmsChainKeys } from "../shared/crypto/chain-keys.ts";
import { DataKeyCache } from "../shared/crypto/data-key-cache.ts";
import type { Keyring } from "../shared/crypto/keyring.ts";
import { KmsKeyring } from "../shared/crypto/kms-keyring.ts";
import { LocalKeyring } from "../shared/crypto/local-keyring.ts";
import type { SweepRun } from "../shared/domain/rotation.ts";
import { deadlineIn } from "../shared/domain/work.ts";
import { DataKeys } from "../shared/services/keys/data-keys.ts";
import { Sealer } from "../shared/services/keys/sealer.ts";
import { SecretRepository } from "../shared/storage/secret-repository.ts";
import type { Table } from "../shared/storage/table.ts";
import { TenantRepository } from "../shared/storage/tenant-repository.ts";
import { DUMMY_CREDENTIALS, type Harness, randomKek, startHarness, startStore } from "../testing/harness.ts";
import { initialKeyId, startKmsEndpoint } from "../testing/kms-endpoint.ts";
import { rewrapAndSettle } from "../testing/rewrap.ts";
import { type LoadResult, runLoad } from "./load.ts";
import { discardingLogger, formatNumber, report, serveFetch } from "./support.ts";

const SECRETS = 10_000;
const TENANTS = 1_000;
const WRITE_CONCURRENCY = 32;
const READ_CONCURRENCY = 16;
const READ_WINDOW_MS = 3_000;
const TENANT = "sweep";
/** No grace period: nothing else writes during the benchmark, and the passes run back to back. */
const ENV = { ROTATION_PAGE_SIZE: "100" };
/** Injected past the environment's ten-second floor, so the settle and verify passes follow quickly. */
const ROTATION = { retireGraceMs: 1000 };

async function inParallel(count: number, concurrency: number, work: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

async function expectStatus(response: Response | Promise<Response>, status: number, what: string) {
  const settled = await response;
  if (settled.status !== status)
    throw new Error(`${what} answered ${settled.status}: ${await settled.text()}`);
}

function call(h: Harness, token: string, method: string, path: string, body?: unknown) {
  return h.app.request(path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** Runs the sweep to the end in one go, as a long-lived runner would; returns its finished passes. */
async function sweepToEnd(h: Harness): Promise<{ totalMs: number; state: SweepRun["state"] }> {
  const started = performance.now();
  let run: SweepRun;
  do {
    run = await h.runtime.dekSweep.runSweep(TENANT, "bench", deadlineIn(120_000), "bench");
    if (run.stoppedBecause === "grace") await new Promise((resolve) => setTimeout(resolve, 100));
  } while (run.stoppedBecause !== "done");
  return { totalMs: performance.now() - started, state: run.state };
}

const passMs = (pass: { startedAt: string; endedAt: string }) =>
  Date.parse(pass.endedAt) - Date.parse(pass.startedAt);

/**
 * 10,000 secrets sealed under DEK v1 and written with one conditional put each through the storage
 * layer: the service's write path would add two audit records and a token check per secret, which
 * only makes the set-up slow, and the sweep cares only about what is stored.
 */
async function seedSecrets(h: Harness, store: { table: Table }, keyring: Keyring): Promise<void> {
  const sealer = new Sealer(
    new DataKeys(keyring, new TenantRepository(store.table), new DataKeyCache()),
    h.runtime.metrics,
    0,
  );
  const key = await sealer.sealingKey(TENANT);
  const secrets = new SecretRepository(store.table);
  const at = new Date().toISOString();
  await inParallel(SECRETS, WRITE_CONCURRENCY, async (i) => {
    const name = `secret-${i}`;
    const current = {
      version: 1,
      envelope: key.seal(name, 1, `value-${i}-${"x".repeat(200)}`),
      createdAt: at,
    };
    const head = { tenantId: TENANT, name, current, updatedAt: at, revision: 0, latestVersion: 1 };
    if (!(await secrets.replaceHead(head, undefined))) throw new Error(`${name} already exists`);
  });
}

function describeLoad(label: string, result: LoadResult) {
  if (result.failures > 0)
    throw new Error(`${result.failures} reads failed during "${label}", e.g. ${result.failureSample}`);
  report.figure(
    `read p99 ${label}`,
    formatNumber(result.p99Ms, 2),
    `ms (p50 ${formatNumber(result.p50Ms, 2)} ms, ${formatNumber(result.requestsPerSecond)} reads/s)`,
  );
}

/** The DEK re-encryption sweep over 10,000 secrets, and reads against the same service meanwhile. */
async function measureSweep(): Promise<void> {
  const store = await startStore();
  const keyring = new LocalKeyring({ active: randomKek(), previous: [] });
  const h = await startHarness({ store, keyring, env: ENV, rotation: ROTATION, logger: discardingLogger() });
  const served = await serveFetch(h.app.fetch);
  try {
    const admin = await h.token("admin");
    await expectStatus(call(h, admin, "POST", "/v1/tenants", { tenantId: TENANT }), 201, "tenant creation");
    const seedStarted = performance.now();
    await seedSecrets(h, store, keyring);
    const seedMs = performance.now() - seedStarted;
    const runner = await h.token("runner", [TENANT]);
    const plan = {
      url: `${served.url}/v1/tenants/${TENANT}/secrets/secret-42`,
      headers: { authorization: `Bearer ${runner}`, "x-audit-reason": "benchmark" },
      concurrency: READ_CONCURRENCY,
      warmupRequests: 200,
      measure: { durationMs: READ_WINDOW_MS },
    };
    const quiet = await runLoad(plan);

    await expectStatus(call(h, admin, "POST", `/v1/tenants/${TENANT}/rotate-dek`), 200, "DEK rotation");
    let sweep: Promise<{ totalMs: number; state: SweepRun["state"] }> | undefined;
    let sweepEndedAt = Number.POSITIVE_INFINITY;
    let windowStartedAt = 0;
    const busy = await runLoad(plan, () => {
      windowStartedAt = performance.now();
      sweep = sweepToEnd(h).finally(() => {
        sweepEndedAt = performance.now();
      });
    });
    const windowEndedAt = windowStartedAt + busy.elapsedMs;
    if (sweep === undefined) throw new Error("the sweep never started");
    const swept = await sweep;
    const status = await h.runtime.dekRotation.countByDekVersion(TENANT);

    report.section(`rotation: DEK re-encryption sweep, ${formatNumber(SECRETS)} secrets on dynalite`);
    report.note("one process: the API serving reads over loopback HTTP and the sweep share one event loop");
    report.figure("seeding (storage layer, one put per secret)", formatNumber(seedMs / 1000, 1), "s");
    const passes = swept.state.completedPasses ?? [];
    const first = passes.find((pass) => pass.phase === "reencrypt");
    if (first === undefined) throw new Error("the sweep finished without a re-encryption pass");
    report.figure("re-encryption pass (re-seal every secret)", formatNumber(passMs(first) / 1000, 2), "s");
    report.figure(
      "re-encryption rate",
      formatNumber(first.resealed / (passMs(first) / 1000)),
      `secrets/s (${formatNumber(first.resealed)} re-sealed, one conditional write each)`,
    );
    for (const pass of passes.filter((p) => p.phase !== "reencrypt")) {
      report.figure(
        `${pass.phase} pass (scan, ${formatNumber(pass.resealed)} re-sealed)`,
        formatNumber(passMs(pass) / 1000, 2),
        "s",
      );
    }
    report.figure("whole sweep, retirement of v1 included", formatNumber(swept.totalMs / 1000, 2), "s");
    report.figure("items per DEK version afterwards", JSON.stringify(status));
    describeLoad("without a sweep", quiet);
    describeLoad("during the sweep", busy);
    report.note(
      sweepEndedAt >= windowEndedAt
        ? "the sweep ran for the whole measured read window"
        : `the sweep ended ${formatNumber((windowEndedAt - sweepEndedAt) / 1000, 2)} s before the read window did`,
    );
  } finally {
    await served.close();
    await store.dynamo.close();
  }
}

async function seedTenants(h: Harness, count: number): Promise<void> {
  const admin = await h.token("admin");
  await inParallel(count, WRITE_CONCURRENCY, (i) =>
    expectStatus(call(h, admin, "POST", "/v1/tenants", { tenantId: `tenant-${i}` }), 201, "tenant creation"),
  );
}

async function timeRewrap(h: Harness): Promise<{ ms: number; rewrapped: number }> {
  const admin = await h.token("admin");
  const started = performance.now();
  // The request answers 202 at once; the figure is the time until the in-process worker is done.
  const kek = await rewrapAndSettle(h, admin);
  if (kek.rewrap?.phase !== "done") throw new Error(`the re-wrap did not finish: ${kek.rewrap?.phase}`);
  return { ms: performance.now() - started, rewrapped: kek.rewrap.rewrapped };
}

/** KEK re-wrap of 1,000 tenants' DEKs: with a local KEK, and through KMS ReEncrypt. */
async function measureRewrap(): Promise<void> {
  report.section(`rotation: KEK re-wrap, ${formatNumber(TENANTS)} tenants`);
  {
    const store = await startStore();
    const kekA = randomKek();
    try {
      await seedTenants(
        await startHarness({
          store,
          keyring: new LocalKeyring({ active: kekA, previous: [] }),
          logger: discardingLogger(),
        }),
        TENANTS,
      );
      const rotated = await startHarness({
        store,
        keyring: new LocalKeyring({ active: randomKek(), previous: [kekA] }),
        logger: discardingLogger(),
      });
      const { ms, rewrapped } = await timeRewrap(rotated);
      report.figure(
        "local KEK: re-wrap time",
        formatNumber(ms / 1000, 2),
        `s (${formatNumber(rewrapped)} DEKs)`,
      );
      report.figure("local KEK: re-wrap rate", formatNumber(rewrapped / (ms / 1000)), "DEKs/s");
    } finally {
      await store.dynamo.close();
    }
  }
  {
    const kms = await startKmsEndpoint({ keys: 2 });
    const macKeyId = kms.createHmacKey();
    const chainKeys = () =>
      new KmsChainKeys({
        client: new KMSClient({
          endpoint: kms.endpoint,
          region: "us-east-1",
          credentials: DUMMY_CREDENTIALS,
        }),
        keyId: macKeyId,
      });
    const store = await startStore();
    const keyring = (keyId: string, previous: string[] = []): Keyring =>
      new KmsKeyring({
        client: new KMSClient({
          endpoint: kms.endpoint,
          region: "us-east-1",
          credentials: DUMMY_CREDENTIALS,
        }),
        keyId,
        previousKeyIds: previous,
      });
    try {
      await seedTenants(
        await startHarness({
          store,
          keyring: keyring(initialKeyId(1)),
          chainKeys: chainKeys(),
          logger: discardingLogger(),
        }),
        TENANTS,
      );
      const rotated = await startHarness({
        store,
        keyring: keyring(initialKeyId(2), [initialKeyId(1)]),
        chainKeys: chainKeys(),
        logger: discardingLogger(),
      });
      await rotated.runtime.keyring.probe();
      kms.resetCalls();
      const { ms, rewrapped } = await timeRewrap(rotated);
      report.note(
        "KMS is the loopback KMS-protocol test endpoint (testing/kms-endpoint.ts), real KMS client",
      );
      report.figure("KMS: re-wrap time", formatNumber(ms / 1000, 2), `s (${formatNumber(rewrapped)} DEKs)`);
      report.figure(
        "KMS calls per re-wrapped DEK",
        formatNumber(kms.totalCalls() / rewrapped, 2),
        `(${Object.entries(kms.calls)
          .map(([operation, n]) => `${operation} ×${n}`)
          .join(", ")})`,
      );
    } finally {
      await store.dynamo.close();
      await kms.close();
    }
  }
}

export async function measureRotation(): Promise<void> {
  await measureSweep();
  await measureRewrap();
}
