import type { AddressInfo } from "node:net";
import dynalite from "dynalite";

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
