import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KMSClient } from "@aws-sdk/client-kms";
import { QueryCommand } from "@aws-sdk/lib-dynamodb";
import { KmsChainKeys } from "../shared/crypto/chain-keys.ts";
import { KmsKeyring } from "../shared/crypto/kms-keyring.ts";
import { StreamSequencer } from "../shared/services/audit/stream-sequencer.ts";
import { AnchorFile } from "../shared/storage/anchor-file.ts";
import { AuditStreamFile } from "../shared/storage/audit-stream-file.ts";
import { createTable, type Table } from "../shared/storage/table.ts";
import { DUMMY_CREDENTIALS, type Harness, startHarness, startStore } from "../testing/harness.ts";
import { initialKeyId, startKmsEndpoint } from "../testing/kms-endpoint.ts";
import { injectLatency, type Latency, latencyFromEnv } from "../testing/latency.ts";
import { percentile } from "./load.ts";
import {
  type CallCounter,
  countDynamoCalls,
  discardingLogger,
  formatNumber,
  report,
  verdict,
} from "./support.ts";

const FLEET_SIZES = [1, 8, 32, 128] as const;
/** Reads of one tenant must keep this share of the same fleet's reads spread over tenants. */
const TARGET_ONE_TENANT_SHARE = 0.8;
const RATIO_SIZES: readonly number[] = [32, 128];
const MEASURE_MS = Number(process.env.FLEET_MEASURE_MS ?? 3000);
const KEY_ALIAS = "alias/strongbox-fleet";
const SECRET = "api-key";

/** One service instance: its own SDK clients (so its own connections and latency), serving one request at a time. */
interface Instance {
  readonly harness: Harness;
  readonly table: Table;
  readonly calls: CallCounter;
}

interface Row {
  readonly reads: number;
  readonly failures: number;
  readonly failureSample?: string;
  readonly seconds: number;
  readonly latencies: number[];
  readonly dynamoCalls: number;
}

/** Each instance reads back to back, one request at a time, until the time is up. */
async function readFor(
  instances: readonly Instance[],
  tenantOf: (i: number) => string,
  token: string,
): Promise<Row> {
  for (const instance of instances) instance.calls.reset();
  const latencies: number[] = [];
  let failures = 0;
  let failureSample: string | undefined;
  const started = performance.now();
  const deadline = started + MEASURE_MS;
  await Promise.all(
    instances.map(async (instance, i) => {
      const path = `/v1/tenants/${tenantOf(i)}/secrets/${SECRET}`;
      while (performance.now() < deadline) {
        const t0 = performance.now();
        const response = await instance.harness.call("GET", path, {
          token,
          headers: { "x-audit-reason": "benchmark" },
        });
        latencies.push(performance.now() - t0);
        if (response.status !== 200) {
          failures += 1;
          failureSample ??= `${response.status} ${response.text.slice(0, 200)}`;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const dynamoCalls = instances.reduce((sum, instance) => sum + instance.calls.total(), 0);
  return {
    reads: latencies.length,
    failures,
    ...(failureSample === undefined ? {} : { failureSample }),
    seconds,
    latencies: latencies.sort((a, b) => a - b),
    dynamoCalls,
  };
}

/**
 * A Lambda fleet in a box: N service instances, each with its own runtime, SDK clients and caches,
 * each serving one request at a time as a Lambda instance does, all on one dynalite table. Every
 * DynamoDB and KMS call waits the injected latency (`FLEET_LATENCY_MS`, default 5 ± 2 ms). At each N,
 * one row reads one tenant from every instance, the next has the same N instances each read a tenant
 * of its own.
 */
export async function measureFleet(): Promise<void> {
  const latency: Latency = latencyFromEnv(process.env.FLEET_LATENCY_MS);
  const kms = await startKmsEndpoint({ aliases: { [KEY_ALIAS]: initialKeyId(1) } });
  const macKeyArn = kms.createHmacKey();
  const store = await startStore();
  const kmsClient = (slow: boolean) => {
    const client = new KMSClient({
      endpoint: kms.endpoint,
      region: "us-east-1",
      credentials: DUMMY_CREDENTIALS,
    });
    if (slow) injectLatency(client, latency);
    return client;
  };
  const dir = mkdtempSync(join(tmpdir(), "strongbox-fleet-"));
  // The table's stream, in the box: every instance appends its records to one file the sequencer reads.
  const stream = new AuditStreamFile(join(dir, "stream.jsonl"));
  const anchors = new AnchorFile(join(dir, "anchors.jsonl"));
  const instance = async (slow: boolean): Promise<Instance> => {
    const table = createTable(
      { endpoint: store.dynamo.endpoint, region: "us-east-1", credentials: DUMMY_CREDENTIALS },
      store.table.name,
    );
    if (slow) injectLatency(table.doc, latency);
    const calls = countDynamoCalls(table);
    const harness = await startHarness({
      store: { dynamo: store.dynamo, table },
      keyring: new KmsKeyring({ client: kmsClient(slow), keyId: KEY_ALIAS }),
      chainKeys: new KmsChainKeys({ client: kmsClient(slow), keyId: macKeyArn }),
      logger: discardingLogger(),
      env: { AUDIT_SEQUENCING: "deferred" },
      auditWitness: stream,
      anchors,
    });
    return { harness, table, calls };
  };
  const largest = FLEET_SIZES[FLEET_SIZES.length - 1] ?? 1;
  const tenants = Array.from({ length: largest }, (_, i) => `fleet-${i}`);
  try {
    const seeder = await instance(false);
    const admin = await seeder.harness.token("admin");
    const value = randomBytes(768).toString("base64");
    for (const tenantId of tenants) {
      const created = await seeder.harness.call("POST", "/v1/tenants", { token: admin, body: { tenantId } });
      if (created.status !== 201) throw new Error(`tenant ${tenantId}: ${created.status} ${created.text}`);
      const written = await seeder.harness.call("PUT", `/v1/tenants/${tenantId}/secrets/${SECRET}`, {
        token: admin,
        body: { value },
      });
      if (written.status >= 300) throw new Error(`secret of ${tenantId}: ${written.status} ${written.text}`);
    }
    const runner = await seeder.harness.token("runner", tenants);
    // One sequencer, as the stream function would be (its calls get the latency too), running throughout.
    const sequencing = await instance(true);
    const sequencer = new StreamSequencer(
      stream,
      sequencing.harness.runtime.sequencer,
      sequencing.harness.runtime.logger,
    );
    await sequencer.drain();
    sequencer.start(SEQUENCER_INTERVAL_MS);
    const fleet: Instance[] = [];
    for (let i = 0; i < largest; i += 1) fleet.push(await instance(true));

    report.section(
      `12. Fleet: N instances, one request at a time each, one table (${MEASURE_MS / 1000} s per row, ${latency.meanMs} ± ${latency.jitterMs} ms on every DynamoDB and KMS call)`,
    );
    report.note(
      "reads go through each instance's app in process; counts are the instances' own DynamoDB calls",
    );
    const readsPerSecond = new Map<string, number>();
    // One tenant and spread alternate at each N, so a machine whose load drifts (other work on it)
    // shifts both rows of a ratio alike.
    for (const n of FLEET_SIZES) {
      for (const spread of [false, true]) {
        const instances = fleet.slice(0, n);
        const tenantOf = (i: number) => (spread ? (tenants[i] as string) : (tenants[0] as string));
        // One read each first: data keys and day keys cached, as on a warm instance.
        await Promise.all(
          instances.map((one, i) =>
            one.harness.call("GET", `/v1/tenants/${tenantOf(i)}/secrets/${SECRET}`, {
              token: runner,
              headers: { "x-audit-reason": "benchmark" },
            }),
          ),
        );
        await waitUntilDrained(stream);
        sequencing.calls.reset();
        const started = new Date().toISOString();
        const row = await readFor(instances, tenantOf, runner);
        const ended = new Date().toISOString();
        await waitUntilDrained(stream);
        const lags = await sequencingLags(
          store.table,
          [...new Set(instances.map((_, i) => tenantOf(i)))],
          started,
          ended,
        );
        const sequencerWrites =
          (sequencing.calls.counts.get("PutItem") ?? 0) +
          (sequencing.calls.counts.get("BatchWriteItem") ?? 0);
        const label = `N=${n}, ${spread ? `${n} tenant${n === 1 ? "" : "s"}` : "one tenant"}`;
        readsPerSecond.set(`${spread}:${n}`, row.reads / row.seconds);
        report.figure(
          `${label}: reads/s`,
          formatNumber(row.reads / row.seconds),
          `p50 ${formatNumber(percentile(row.latencies, 50), 1)} ms, p99 ${formatNumber(percentile(row.latencies, 99), 1)} ms, ${formatNumber(row.dynamoCalls / Math.max(1, row.reads), 2)} DynamoDB calls/read, ${row.failures} failed${row.failureSample === undefined ? "" : ` (${row.failureSample})`}`,
        );
        report.figure(
          `${label}: sequencer`,
          `${formatNumber(sequencerWrites / Math.max(1, lags.length), 3)} writes/record`,
          `read→sequenced p50 ${formatNumber(percentile(lags, 50))} ms, p99 ${formatNumber(percentile(lags, 99))} ms (${lags.length} records)`,
        );
      }
    }
    for (const n of RATIO_SIZES) {
      const share = (readsPerSecond.get(`false:${n}`) ?? 0) / (readsPerSecond.get(`true:${n}`) ?? Number.NaN);
      report.figure(
        `N=${n}: one tenant / spread reads/s (target ≥ ${TARGET_ONE_TENANT_SHARE})`,
        formatNumber(share, 2),
        verdict(share >= TARGET_ONE_TENANT_SHARE),
      );
    }
    await sequencer.stop();
  } finally {
    await store.dynamo.close();
    await kms.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const SEQUENCER_INTERVAL_MS = 100;

/** Until the sequencer's checkpoint reaches the end of the stream. */
async function waitUntilDrained(stream: AuditStreamFile): Promise<void> {
  for (;;) {
    if (stream.read(stream.checkpoint(), 1).images.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * For each record written between `from` and `to` (by its time), how long after it its block was
 * chained (the block's `sealedAt`), in ms, sorted. Read behind the service's back, after the row.
 * The sequencer's writes are PutItem (a block) and BatchWriteItem (the chained records leave the queue).
 */
async function sequencingLags(
  table: Table,
  tenants: readonly string[],
  from: string,
  to: string,
): Promise<number[]> {
  const lags: number[] = [];
  for (const tenant of tenants) {
    let startKey: Record<string, unknown> | undefined;
    do {
      const result = await table.doc.send(
        new QueryCommand({
          TableName: table.name,
          KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
          ExpressionAttributeValues: { ":pk": `AUDIT#${tenant}`, ":prefix": "SEQ#" },
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of result.Items ?? []) {
        const sealedAt = Date.parse(String(item.sealedAt));
        for (const record of item.records as { time: string; action: string }[]) {
          if (record.action !== "secret.read" || record.time < from || record.time > to) continue;
          lags.push(sealedAt - Date.parse(record.time));
        }
      }
      startKey = result.LastEvaluatedKey;
    } while (startKey !== undefined);
  }
  return lags.sort((a, b) => a - b);
}
