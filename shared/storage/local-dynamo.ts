import { mkdtemp, rm } from "node:fs/promises";
import { Agent } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import dynalite from "dynalite";
import { createTable, type Table } from "./table.ts";

export interface LocalDynamo {
  readonly endpoint: string;
  close(): Promise<void>;
}

/**
 * A real DynamoDB-protocol server on loopback, for tests and benches (which put fault proxies in front
 * of it): on disk under `path`, or in memory without one. One process per path, since dynalite's
 * LevelDB store takes an exclusive lock.
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
 * dynalite checks no credentials, so the local server's store listens on no port at all: on a Unix
 * socket in a directory of its own that only this user may enter (mkdtemp makes it 0700), which the
 * process's DynamoDB client reaches through an agent that dials that socket. Another user on the
 * machine, or a web page making requests to loopback, cannot reach the table.
 */
export async function startSocketDynamo(path: string): Promise<{
  readonly socketPath: string;
  readonly agent: Agent;
  close(): Promise<void>;
}> {
  const dir = await mkdtemp(join(tmpdir(), "strongbox-dynamo-"));
  const socketPath = join(dir, "dynamo.sock");
  const server = dynalite({ path, createTableMs: 0 });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => resolve());
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const agent = new Agent({ keepAlive: true });
  // The one connection this agent makes: to the socket, whatever host and port a request names.
  Object.assign(agent, { createConnection: () => connect(socketPath) });
  return {
    socketPath,
    agent,
    close: async () => {
      agent.destroy();
      await new Promise<void>((resolve, reject) => {
        server.closeAllConnections?.();
        server.close((error) => (error ? reject(error) : resolve()));
      });
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The table of a local process (the server, an operator script): DynamoDB at `endpoint` when one is
 * configured, else dynalite started in-process on disk under `localPath`, on a private socket.
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
  const dynamo = await startSocketDynamo(options.localPath);
  const table = createTable(
    {
      region: options.region,
      // Only the host part of a request reaches the socket's agent, which ignores it.
      endpoint: "http://localhost",
      credentials: DYNALITE_CREDENTIALS,
      httpAgent: dynamo.agent,
      ...timeout,
    },
    options.tableName,
  );
  return { table, close: () => dynamo.close() };
}
