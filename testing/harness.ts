import { randomBytes } from "node:crypto";
import { createApp } from "../functions/api/app.ts";
import type { ChainKeys } from "../shared/crypto/chain-keys.ts";
import type { Keyring } from "../shared/crypto/keyring.ts";
import { LocalKeyring } from "../shared/crypto/local-keyring.ts";
import type { AnchorLog } from "../shared/domain/audit-chain.ts";
import type { RewrapDispatch } from "../shared/domain/rotation.ts";
import type { Role } from "../shared/domain/types.ts";
import type { Logger } from "../shared/observability/logger.ts";
import type { RotationEvents } from "../shared/observability/rotation-events.ts";
import { type RuntimeConfig, readRuntimeConfig } from "../shared/runtime/config.ts";
import { createRuntime, type Runtime } from "../shared/runtime/container.ts";
import type { PendingWitness } from "../shared/services/audit/audit-log.ts";
import { type LocalDynamo, startLocalDynamo } from "../shared/storage/local-dynamo.ts";
import { createTable, ensureTableExists, type Table } from "../shared/storage/table.ts";

export const DUMMY_CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };

export function randomKek(): Uint8Array {
  return new Uint8Array(randomBytes(32));
}

/** An in-memory dynalite on loopback with the service's table, reached through the real SDK. */
export async function startStore(): Promise<{ dynamo: LocalDynamo; table: Table }> {
  const dynamo = await startLocalDynamo();
  const table = createTable(
    { endpoint: dynamo.endpoint, region: "us-east-1", credentials: DUMMY_CREDENTIALS },
    `strongbox-${randomBytes(4).toString("hex")}`,
  );
  await ensureTableExists(table);
  return { dynamo, table };
}

export interface Harness {
  readonly runtime: Runtime;
  readonly app: ReturnType<typeof createApp>;
  readonly table: Table;
  readonly dynamo: LocalDynamo;
  /** Issues a real token straight through the token service, as the bootstrap does. */
  token(role: Role, tenants?: readonly string[]): Promise<string>;
  /** `app.request` with a bearer token and JSON body filled in. */
  call(
    method: string,
    path: string,
    options?: { token?: string; body?: unknown; headers?: Record<string, string> },
  ): Promise<ApiResponse>;
  close(): Promise<void>;
}

/** A response read once, so tests can look at both the raw text and the parsed JSON. */
export interface ApiResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  json(): Promise<any>;
}

export async function readResponse(response: Response): Promise<ApiResponse> {
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    text,
    json: async () => JSON.parse(text),
  };
}

export interface HarnessOptions {
  readonly keyring?: Keyring;
  /** Needed with a KMS keyring; a local keyring derives its own from its KEK. */
  readonly chainKeys?: ChainKeys;
  readonly store?: { dynamo: LocalDynamo; table: Table };
  readonly logger?: Logger;
  readonly env?: Record<string, string>;
  /**
   * Test-only: rotation settings passed to createRuntime as they are, past readRuntimeConfig's floor,
   * so sweeps can finish within a test (a short DEK_RETIRE_GRACE_SECONDS is refused from the env).
   */
  readonly rotation?: Partial<RuntimeConfig["rotation"]>;
  readonly events?: RotationEvents;
  /** Where re-wrap requests go, as on Lambda; by default the in-process worker. */
  readonly rewrapDispatch?: RewrapDispatch;
  /** Gives the runtime the directory backfill, as `npm start` and the rotation function have it. */
  readonly directoryBackfill?: boolean;
  readonly auditWitness?: PendingWitness;
  readonly anchors?: AnchorLog;
  /** The API's way with the anchors on Lambda: verify reads them, the sequencer appends none. */
  readonly anchorsReadOnly?: boolean;
}

function withRotation(config: RuntimeConfig, rotation: HarnessOptions["rotation"]): RuntimeConfig {
  return rotation === undefined ? config : { ...config, rotation: { ...config.rotation, ...rotation } };
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const store = options.store ?? (await startStore());
  const keyring = options.keyring ?? new LocalKeyring({ active: randomKek(), previous: [] });
  const runtime = createRuntime({
    keyring,
    ...(options.chainKeys === undefined ? {} : { chainKeys: options.chainKeys }),
    table: store.table,
    // Tests rotate DEKs back to back; the minimum interval applies only where a test sets it. They also
    // chain each record as it is written, so a chain can be looked at as soon as a call returns; the
    // sequencer tests ask for `deferred`.
    config: withRotation(
      readRuntimeConfig({ DEK_ROTATE_MIN_INTERVAL_SECONDS: "0", AUDIT_SEQUENCING: "inline", ...options.env }),
      options.rotation,
    ),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.events === undefined ? {} : { events: options.events }),
    ...(options.directoryBackfill === undefined ? {} : { directoryBackfill: options.directoryBackfill }),
    ...(options.rewrapDispatch === undefined ? {} : { rewrapDispatch: options.rewrapDispatch }),
    ...(options.auditWitness === undefined ? {} : { auditWitness: options.auditWitness }),
    ...(options.anchors === undefined ? {} : { anchors: options.anchors }),
    ...(options.anchorsReadOnly === undefined ? {} : { anchorsReadOnly: options.anchorsReadOnly }),
  });
  const app = createApp(runtime);
  return {
    runtime,
    app,
    table: store.table,
    dynamo: store.dynamo,
    async token(role, tenants = []) {
      return (await runtime.tokens.issue(role, role === "admin" ? ["*"] : tenants, 3600)).token;
    },
    call(method, path, { token, body, headers = {} } = {}) {
      const init: RequestInit = {
        method,
        headers: {
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...headers,
        },
        ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
      };
      return Promise.resolve(app.request(path, init)).then(readResponse);
    },
    async close() {
      if (options.store === undefined) await store.dynamo.close();
    },
  };
}
