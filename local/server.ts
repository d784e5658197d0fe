import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Duplex } from "node:stream";
import { serve } from "@hono/node-server";
import { createApp } from "../functions/api/app.ts";
import { errorBody } from "../functions/api/http.ts";
import { ConfigError, StrongboxError } from "../shared/domain/errors.ts";
import { deadlineIn } from "../shared/domain/work.ts";
import { createLogger } from "../shared/observability/logger.ts";
import { readRuntimeConfig } from "../shared/runtime/config.ts";
import { createKeyring, createRuntime, type Runtime } from "../shared/runtime/container.ts";
import { checkStartUp, StartUpRefusedError } from "../shared/runtime/start-up-check.ts";
import { BackgroundRewrap } from "../shared/services/ops/background-rewrap.ts";
import { openTable } from "../shared/storage/local-dynamo.ts";
import { ensureTableExists } from "../shared/storage/table.ts";

const BOOTSTRAP_TOKEN_TTL_SECONDS = 30 * 24 * 3600;
const logger = createLogger();

async function ensureBootstrapToken(runtime: Runtime, path: string): Promise<void> {
  if (existsSync(path)) {
    const tokenId = /^sbx_([a-z2-7]{26})_/.exec(readFileSync(path, "utf8").trim())?.[1];
    if (tokenId !== undefined && (await runtime.tokens.isActive(tokenId))) {
      logger.info("bootstrap admin token is in its file", { path });
      return;
    }
  }
  const issued = await runtime.tokens.issue("admin", ["*"], BOOTSTRAP_TOKEN_TTL_SECONDS);
  writeFileSync(path, `${issued.token}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  logger.info("bootstrap admin token written; read it from the file", { path, expiresAt: issued.expiresAt });
}

/**
 * Locally the scheduled rotation work runs on a timer, as EventBridge runs the rotation Lambda in the
 * cloud. Runs never overlap, and each stops well before the next is due.
 */
function startRotationTimer(runtime: Runtime): () => void {
  const intervalMs = runtime.config.rotation.intervalSeconds * 1000;
  if (intervalMs === 0) return () => undefined;
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    runtime.scheduledWork
      .run(deadlineIn(intervalMs * 0.8), `timer-${Date.now()}`)
      .catch((error: unknown) => {
        logger.error("scheduled rotation run failed", {
          errorName: error instanceof Error ? error.name : "unknown",
        });
      })
      .finally(() => {
        running = false;
      });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

async function main(): Promise<void> {
  const env = process.env;
  // The SDK would otherwise probe the instance metadata address for credentials and region.
  env.AWS_EC2_METADATA_DISABLED ??= "true";
  const dataDir = resolve(env.DATA_DIR ?? ".data");
  const config = readRuntimeConfig(env);
  const { keyring, chainKeys, devMode } = createKeyring(env, config, join(dataDir, "dev-kek"));
  if (devMode) {
    logger.warn(
      "no KEK configured: using a generated development KEK (see path). Never do this in production.",
      {
        path: join(dataDir, "dev-kek"),
        kekId: keyring.activeKekId,
      },
    );
  }

  const { table, close: closeStore } = await openTable({
    region: config.region,
    tableName: config.tableName,
    endpoint: config.dynamoEndpoint,
    localPath: join(dataDir, "dynamodb"),
  });
  await ensureTableExists(table);
  // One process is also the rotation function here: it may backfill the tenant directory, and a
  // re-wrap request goes to a worker in this process (the default dispatch).
  const runtime = createRuntime({ keyring, chainKeys, table, config, logger, directoryBackfill: true });

  try {
    await checkStartUp(runtime, runtime.metrics);
  } catch (error) {
    await closeStore();
    // checkStartUp has logged each problem.
    if (error instanceof StartUpRefusedError) process.exit(1);
    throw error;
  }
  // Before serving, so no request meets a table whose directory still lacks its older tenants.
  const backfill = await runtime.directoryBackfill?.run();
  if (backfill?.scanned) logger.info("tenant directory backfilled", { tenants: backfill.tenants });
  await ensureBootstrapToken(runtime, join(dataDir, "admin-token"));

  const port = Number(env.PORT ?? 8787);
  const hostname = env.HOST ?? "127.0.0.1";
  const server = serve(
    { fetch: createApp(runtime, { exposeMetrics: true }).fetch, port, hostname },
    (info) => {
      logger.info("strongbox listening", {
        url: `http://${hostname}:${info.port}`,
        kekId: keyring.activeKekId,
      });
    },
  );

  // Node answers oversized or malformed requests itself, before Hono sees them; keep the JSON contract.
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const tooLarge = error.code === "HPE_HEADER_OVERFLOW";
    const body = JSON.stringify(
      tooLarge
        ? errorBody("headers_too_large", "request headers are too large")
        : errorBody("invalid_request", "malformed HTTP request"),
    );
    socket.end(
      `HTTP/1.1 ${tooLarge ? "431 Request Header Fields Too Large" : "400 Bad Request"}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });

  const stopRotation = startRotationTimer(runtime);

  const shutdown = () => {
    stopRotation();
    // A re-wrap under way stops at its next checkpoint; the next start's rotation run continues it.
    const rewrap =
      runtime.rewrapDispatch instanceof BackgroundRewrap ? runtime.rewrapDispatch.stop() : undefined;
    server.close(() => {
      // Counts of repeated denials still in their window go into the chain before the store closes.
      void Promise.resolve(rewrap)
        .then(() => runtime.denials.flush())
        .then(() => closeStore())
        .finally(() => process.exit(0));
    });
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    logger.error(error.message, { variable: error.variable });
  } else if (error instanceof StrongboxError) {
    logger.error("start-up failed", { code: error.code, message: error.message });
  } else {
    logger.error("start-up failed", { errorName: error instanceof Error ? error.name : "unknown" });
  }
  process.exit(1);
});
