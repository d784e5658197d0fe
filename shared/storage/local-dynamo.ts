import type { AddressInfo } from "node:net";
import dynalite from "dynalite";
import { createTable, type Table } from "./table.ts";

export interface LocalDynamo {
  readonly endpoint: string;
  close(): Promise<void>;
}

/**
 * A real DynamoDB-protocol server on loopback: on disk under `path`, or in memory without one. One
 * process per path, since dynalite's LevelDB store takes an exclusive lock.
 */
export async function startLocalDynamo(options: { path?: string; port?: number } = {}): Promise<LocalDynamo> {
  const server = dynalite({
    ...(options.path === undefined ? {} : { path: options.path }),
    createTableMs: 0,
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections?.();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/** dynalite checks no signatures; the SDK still signs, so it needs some credentials. */
const DYNALITE_CREDENTIALS = { accessKeyId: "local", secretAccessKey: "local" };

export interface OpenedTable {
  readonly table: Table;
  /** Stops the in-process dynalite, if one was started. */
  close(): Promise<void>;
}

/**
 * The table of a local process (the server, an operator script): DynamoDB at `endpoint` when one is
 * configured, else dynalite started in-process on disk under `localPath`.
 */
export async function openTable(options: {
  readonly region: string;
  readonly tableName: string;
  readonly endpoint?: string | undefined;
  readonly localPath: string;
  readonly requestTimeoutMs?: number;
}): Promise<OpenedTable> {
  const timeout =
    options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs };
  if (options.endpoint !== undefined) {
    const table = createTable(
      { region: options.region, endpoint: options.endpoint, ...timeout },
      options.tableName,
    );
    return { table, close: async () => {} };
  }
  const dynamo = await startLocalDynamo({ path: options.localPath });
  const table = createTable(
    { region: options.region, endpoint: dynamo.endpoint, credentials: DYNALITE_CREDENTIALS, ...timeout },
    options.tableName,
  );
  return { table, close: () => dynamo.close() };
}
