import { Console } from "node:console";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import type { ChainKeys } from "../shared/crypto/chain-keys.ts";
import type { Keyring } from "../shared/crypto/keyring.ts";
import { LocalKeyring } from "../shared/crypto/local-keyring.ts";
import { createLogger, type Logger } from "../shared/observability/logger.ts";
import { StreamSequencer } from "../shared/services/audit/stream-sequencer.ts";
import { AuditStreamFile } from "../shared/storage/audit-stream-file.ts";
import type { Table } from "../shared/storage/table.ts";
import { type Harness, randomKek, startHarness, startStore } from "../testing/harness.ts";

// ---------------------------------------------------------------------------------------------------
// Output: one figure per line, label left, value and unit right.

const LABEL_WIDTH = 48;

export const report = {
  section(title: string): void {
    console.log(`\n${title}`);
  },
  figure(label: string, value: string, unit = ""): void {
    console.log(`  ${label.padEnd(LABEL_WIDTH)} ${value}${unit === "" ? "" : ` ${unit}`}`);
  },
  note(text: string): void {
    console.log(`  (${text})`);
  },
};

export function formatNumber(value: number, fractionDigits = 0): string {
  return value.toLocaleString("en-US", {
    minimumFractionDigits: fractionDigits,
    maximumFractionDigits: fractionDigits,
  });
}

export const median = (values: readonly number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

export const mib = (bytes: number) => formatNumber(bytes / 2 ** 20, 1);

export function verdict(met: boolean): string {
  return met ? "target met" : "TARGET NOT MET";
}

// ---------------------------------------------------------------------------------------------------
// The service under test.

/**
 * The service's real logger at its real level, with its output discarded: the access log still builds
 * and serialises one JSON line per request, as in production, but thousands of them would bury the
 * figures. Errors still go to stderr. Powertools offers no option for a custom stream, hence the field.
 */
export function discardingLogger(): Logger {
  const logger = createLogger();
  const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
  (logger as unknown as { console: Console }).console = new Console({ stdout: sink, stderr: process.stderr });
  return logger;
}

export interface Served {
  readonly url: string;
  close(): Promise<void>;
}

export function serveFetch(fetch: (request: Request) => Response | Promise<Response>): Promise<Served> {
  return new Promise((resolve) => {
    const server = serve({ fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
      resolve({
        url: `http://127.0.0.1:${info.port}`,
        close: () =>
          new Promise<void>((done) => {
            (server as Server).closeAllConnections();
            server.close(() => done());
          }),
      });
    }) as Server;
  });
}

export const TENANT = "bench";
export const SECRET = "api-key";
export const VALUE_BYTES = 1024;

/** The real app and a bare one-`GetItem` route, both served over loopback HTTP, on one dynalite. */
export interface Stack {
  readonly table: Table;
  /** GET of the seeded secret through the real app, with the headers a runner sends. */
  readonly serviceRead: { readonly url: string; readonly headers: Record<string, string> };
  /** The same item through a route that does nothing but one `GetItem` on the same DocumentClient. */
  readonly bareRead: { readonly url: string; readonly headers: Record<string, string> };
  close(): Promise<void>;
}

/**
 * The bare baseline: Hono on the same node server adapter, one `GetItem` through the service's own
 * storage helper (same DocumentClient, consistent read), and a small JSON answer. No auth, no audit, no
 * crypto, no access log: the cost of HTTP plus one DynamoDB round trip.
 */
function bareApp(table: Table): Hono {
  const app = new Hono();
  app.get("/bare/:tenantId/secrets/:name", async (c) => {
    const item = await table.get({ pk: `T#${c.req.param("tenantId")}`, sk: `S#${c.req.param("name")}` });
    if (item === undefined) return c.json({ error: { code: "not_found", message: "no such item" } }, 404);
    return c.json({ name: item.name, version: item.version, createdAt: item.createdAt });
  });
  return app;
}

async function expectOk(response: Response | Promise<Response>, what: string): Promise<Response> {
  const settled = await response;
  if (!settled.ok) throw new Error(`${what} answered ${settled.status}: ${await settled.text()}`);
  return settled;
}

/** Creates the tenant and a 1 KiB secret through the API, and returns a runner token for reading it. */
async function seed(harness: Harness, value: string): Promise<string> {
  const admin = await harness.token("admin");
  const headers = { authorization: `Bearer ${admin}`, "content-type": "application/json" };
  await expectOk(
    harness.app.request("/v1/tenants", {
      method: "POST",
      headers,
      body: JSON.stringify({ tenantId: TENANT }),
    }),
    "tenant creation",
  );
  await expectOk(
    harness.app.request(`/v1/tenants/${TENANT}/secrets/${SECRET}`, {
      method: "PUT",
      headers,
      body: JSON.stringify({ value }),
    }),
    "secret write",
  );
  return harness.token("runner", [TENANT]);
}

/** Reads both routes once over HTTP, so that a broken setup fails here instead of measuring errors. */
async function checkRoutes(stack: Stack, value: string): Promise<void> {
  const service = await expectOk(
    fetch(stack.serviceRead.url, { headers: stack.serviceRead.headers }),
    "read",
  );
  const body = (await service.json()) as { value?: unknown };
  if (body.value !== value) throw new Error("the service read did not return the seeded value");
  await expectOk(fetch(stack.bareRead.url, { headers: stack.bareRead.headers }), "bare read");
}

export interface StackOptions {
  /** Makes a keyring; called once per service instance, so each has its own. A local KEK by default. */
  readonly newKeyring?: () => Keyring;
  /** The audit chain's keys per instance; needed with a KMS keyring, derived from a local KEK otherwise. */
  readonly newChainKeys?: () => ChainKeys;
}

/**
 * One instance seeds the data and a second one serves it, on the same store, so the served instance
 * starts with a cold data-key cache, like a fresh deployment, and its reads have to fill it themselves.
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const kek = randomKek();
  const newKeyring = options.newKeyring ?? (() => new LocalKeyring({ active: kek, previous: [] }));
  const store = await startStore();
  // As `npm start` runs: records go to the table and the stream file, and a sequencer in this process
  // chains them (the served instance's own), so its cost is in the figures.
  const dir = mkdtempSync(join(tmpdir(), "strongbox-bench-"));
  const stream = new AuditStreamFile(join(dir, "stream.jsonl"));
  const instance = () =>
    startHarness({
      store,
      env: { AUDIT_SEQUENCING: "deferred" },
      auditWitness: stream,
      keyring: newKeyring(),
      ...(options.newChainKeys === undefined ? {} : { chainKeys: options.newChainKeys() }),
      logger: discardingLogger(),
    });
  const value = randomBytes((VALUE_BYTES * 3) / 4).toString("base64");
  const runner = await seed(await instance(), value);
  const served = await instance();
  const sequencer = new StreamSequencer(stream, served.runtime.sequencer, served.runtime.logger);
  sequencer.start(200);
  const service = await serveFetch(served.app.fetch);
  const bare = await serveFetch(bareApp(store.table).fetch);
  const stack: Stack = {
    table: store.table,
    serviceRead: {
      url: `${service.url}/v1/tenants/${TENANT}/secrets/${SECRET}`,
      headers: { authorization: `Bearer ${runner}`, "x-audit-reason": "benchmark" },
    },
    bareRead: { url: `${bare.url}/bare/${TENANT}/secrets/${SECRET}`, headers: {} },
    async close() {
      await service.close();
      await bare.close();
      await sequencer.stop();
      await store.dynamo.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await checkRoutes(stack, value);
  return stack;
}

// ---------------------------------------------------------------------------------------------------
// DynamoDB request counting.

export interface CallCounter {
  /** Requests per wire operation (GetItem, PutItem, ...) since the last reset. */
  readonly counts: Map<string, number>;
  total(): number;
  reset(): void;
}

/**
 * Counts DynamoDB requests as they go on the wire. The middleware sits in the deserialize step, inside
 * the retry middleware, so a retried call counts once per attempt; the operation is read from the
 * X-Amz-Target header, which names the real operation (GetItem) rather than the DocumentClient's
 * command (GetCommand).
 */
export function countDynamoCalls(table: Table): CallCounter {
  const counts = new Map<string, number>();
  table.doc.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string> } | undefined;
      const target = request?.headers?.["x-amz-target"];
      const operation = target?.split(".").pop() ?? context.commandName ?? "unknown";
      counts.set(operation, (counts.get(operation) ?? 0) + 1);
      return next(args);
    },
    { step: "deserialize", name: "benchDynamoCallCounter" },
  );
  return {
    counts,
    total: () => [...counts.values()].reduce((sum, n) => sum + n, 0),
    reset: () => counts.clear(),
  };
}
