import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join, resolve } from "node:path";
import type { Duplex, Readable } from "node:stream";
import { getRequestListener, type Http2Bindings, type HttpBindings, RequestError } from "@hono/node-server";
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
  const app = createApp(runtime, { exposeMetrics: true });
  // The adapter answers a request it cannot turn into a Request (a backslash in the path, a bad Host)
  // with an empty 400 unless given a handler; keep the JSON contract there too.
  const fetch = async (request: Request, env: HttpBindings | Http2Bindings) => {
    const response = await app.fetch(request, env);
    await discardUnreadBody(env.incoming);
    return response;
  };
  const listener = getRequestListener(fetch, {
    hostname,
    errorHandler: (error) => {
      const malformed = error instanceof RequestError;
      if (!malformed) logger.error("request failed in the adapter", { errorName: errorName(error) });
      return Response.json(
        malformed
          ? errorBody("invalid_request", "malformed HTTP request")
          : errorBody("internal_error", "internal error"),
        { status: malformed ? 400 : 500 },
      );
    },
  });
  // Node's own check of a missing Host (RFC 9112 wants a 400) answers with an empty body; this one is JSON.
  const server = createServer({ requireHostHeader: false }, (incoming, outgoing) => {
    if (incoming.headers.host === undefined && incoming.httpVersion === "1.1") {
      const body = JSON.stringify(errorBody("invalid_request", "the request has no Host header"));
      outgoing.writeHead(400, { "content-type": "application/json", connection: "close" }).end(body);
      return;
    }
    void listener(incoming, outgoing);
  });
  server.listen(port, hostname, () => {
    const address = server.address();
    logger.info("strongbox listening", {
      url: `http://${hostname}:${typeof address === "object" && address !== null ? address.port : port}`,
      kekId: keyring.activeKekId,
    });
  });

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

/** How much of a refused request's body is read and discarded before answering; past it the socket may reset. */
const MAX_DISCARDED_BODY_BYTES = 16 * 1024 * 1024;

/**
 * An answer given before the body was read (a 413 from the body limit) is held until the client has
 * sent the rest, up to a bound. Closing a socket with unread input makes the kernel send a reset,
 * which can destroy the answer in the client's buffer before it reads it, most often when the client
 * sent `Connection: close`.
 */
function discardUnreadBody(incoming: Readable & { readonly complete: boolean }): Promise<void> {
  if (incoming.complete || incoming.readableEnded || incoming.destroyed) return Promise.resolve();
  return new Promise((done) => {
    let discarded = 0;
    // The request's web stream, no longer read, pauses the message whenever its queue fills.
    const keepFlowing = () => incoming.resume();
    const finish = () => {
      incoming.off("pause", keepFlowing);
      incoming.off("data", onData);
      incoming.off("end", finish);
      incoming.off("close", finish);
      incoming.off("error", finish);
      done();
    };
    const onData = (chunk: Buffer) => {
      discarded += chunk.length;
      if (discarded > MAX_DISCARDED_BODY_BYTES) finish();
    };
    incoming.on("data", onData);
    incoming.on("pause", keepFlowing);
    incoming.once("end", finish);
    incoming.once("close", finish);
    incoming.once("error", finish);
    incoming.resume();
  });
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : "unknown";
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
