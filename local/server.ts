import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { isIP } from "node:net";
import { join, resolve } from "node:path";
import type { Duplex, Readable } from "node:stream";
import { getRequestListener, type Http2Bindings, type HttpBindings, RequestError } from "@hono/node-server";
import { createApp } from "../functions/api/app.ts";
import { errorBody } from "../functions/api/http.ts";
import { ConfigError, StrongboxError } from "../shared/domain/errors.ts";
import { deadlineIn } from "../shared/domain/work.ts";
import { createLogger } from "../shared/observability/logger.ts";
import { createAnchorLog } from "../shared/runtime/anchors.ts";
import { readRuntimeConfig } from "../shared/runtime/config.ts";
import { createKeyring, createRuntime, type Runtime } from "../shared/runtime/container.ts";
import { checkStartUp, StartUpRefusedError } from "../shared/runtime/start-up-check.ts";
import { StreamSequencer } from "../shared/services/audit/stream-sequencer.ts";
import { BackgroundRewrap } from "../shared/services/ops/background-rewrap.ts";
import { ANCHOR_FILE } from "../shared/storage/anchor-file.ts";
import { AUDIT_STREAM_FILE, AuditStreamFile } from "../shared/storage/audit-stream-file.ts";
import { openTable } from "../shared/storage/local-dynamo.ts";
import { ensureTableExists } from "../shared/storage/table.ts";
import { apiReference } from "./api-reference.ts";

const BOOTSTRAP_TOKEN_TTL_SECONDS = 30 * 24 * 3600;
/** How often the in-process sequencer reads the audit stream: a read's record is chained within about this. */
const SEQUENCER_INTERVAL_MS = 200;
const logger = createLogger();

/** `npm start -- --reissue-bootstrap-token`, or this variable set to `true`: mint a new bootstrap token. */
const REISSUE_FLAG = "--reissue-bootstrap-token";
const REISSUE_VARIABLE = "STRONGBOX_REISSUE_BOOTSTRAP_TOKEN";

/**
 * A fresh install gets its admin token in the file. Once one was issued, a token that was revoked,
 * has expired or is lost is replaced only on request (the flag or variable), so a restart never
 * undoes a revocation; the server then serves without one.
 */
async function ensureBootstrapToken(runtime: Runtime, path: string, reissue: boolean): Promise<void> {
  const fileTokenId = existsSync(path)
    ? /^sbx_([a-z2-7]{26})_/.exec(readFileSync(path, "utf8").trim())?.[1]
    : undefined;
  const outcome = await runtime.tokens.ensureLocalBootstrap(
    fileTokenId,
    BOOTSTRAP_TOKEN_TTL_SECONDS,
    reissue,
  );
  if (outcome.state === "active") {
    logger.info("bootstrap admin token is in its file", { path });
    return;
  }
  if (outcome.state === "refused") {
    logger.warn(
      `the bootstrap admin token is revoked, expired or lost and is not replaced; start with ${REISSUE_FLAG} or ${REISSUE_VARIABLE}=true to issue a new one`,
      { path, tokenId: outcome.previous },
    );
    return;
  }
  writeFileSync(path, `${outcome.issued.token}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  logger.info("bootstrap admin token written; read it from the file", {
    path,
    tokenId: outcome.issued.id,
    reissued: outcome.state === "reissued",
    expiresAt: outcome.issued.expiresAt,
  });
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
  const port = Number(env.PORT ?? 8787);
  const hostname = env.HOST ?? "127.0.0.1";
  refuseInsecureHost(hostname, env);
  const dataDir = resolve(env.DATA_DIR ?? ".data");
  prepareDataDir(dataDir);
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

  const { table, close: closeStore } = await openStore(config, dataDir);
  // One process is also the rotation function here: it may backfill the tenant directory, and a
  // re-wrap request goes to a worker in this process (the default dispatch).
  // The table has no stream here: the request path also appends each audit record to a file the
  // sequencer in this process reads, and chain heads are anchored in another, both under .data/
  // (the heads in the S3 bucket instead when AUDIT_ANCHOR_BUCKET names one).
  const auditStream = new AuditStreamFile(join(dataDir, AUDIT_STREAM_FILE));
  const runtime = createRuntime({
    keyring,
    chainKeys,
    table,
    config,
    logger,
    directoryBackfill: true,
    auditWitness: auditStream,
    anchors: createAnchorLog(config, join(dataDir, ANCHOR_FILE)),
  });
  const sequencer = new StreamSequencer(auditStream, runtime.sequencer, logger);

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
  const reissue = process.argv.includes(REISSUE_FLAG) || env[REISSUE_VARIABLE]?.trim() === "true";
  await ensureBootstrapToken(runtime, join(dataDir, "admin-token"), reissue);
  // What a previous process wrote and did not chain before it stopped (or crashed) is chained first.
  const recovered = await sequencer.drain();
  if (recovered > 0) logger.info("audit records chained from the stream on start", { records: recovered });
  sequencer.start(SEQUENCER_INTERVAL_MS);

  const app = createApp(runtime, { exposeMetrics: true });
  // The adapter answers a request it cannot turn into a Request (a backslash in the path, a bad Host)
  // with an empty 400 unless given a handler; keep the JSON contract there too.
  const fetch = async (request: Request, env: HttpBindings | Http2Bindings) => {
    const response = (await apiReference(request)) ?? (await app.fetch(request, env));
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
  server.once("error", (error: NodeJS.ErrnoException) => {
    logger.error(`cannot listen on ${hostname}:${port} (${error.code ?? error.name}); set PORT or HOST`, {
      variable: "PORT",
      code: error.code,
    });
    process.exit(1);
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
        .then(() => sequencer.stop())
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

/** The name that allows a non-loopback HOST; why it exists is in docs/configuration.md. */
const INSECURE_HOST_VARIABLE = "ALLOW_PLAINTEXT_HOST";

function isLoopback(hostname: string): boolean {
  if (hostname === "localhost" || hostname === "::1" || hostname === "[::1]") return true;
  return isIP(hostname) === 4 && hostname.startsWith("127.");
}

/** This server speaks plain HTTP: tokens and values would cross the network readable. */
function refuseInsecureHost(hostname: string, env: NodeJS.ProcessEnv): void {
  if (isLoopback(hostname)) return;
  if (env[INSECURE_HOST_VARIABLE] === "1") {
    logger.warn("listening beyond loopback without TLS: put a TLS-terminating proxy in front", {
      variable: "HOST",
      host: hostname,
    });
    return;
  }
  throw new ConfigError(
    "HOST",
    `HOST=${hostname} is not a loopback address, and this server has no TLS: tokens and values would ` +
      `cross the network in clear. Use HOST=127.0.0.1, or terminate TLS in a proxy on this machine and set ` +
      `${INSECURE_HOST_VARIABLE}=1`,
  );
}

/** DATA_DIR holds the dev KEK, the bootstrap token and the store: only its owner may enter it, every start. */
function prepareDataDir(dataDir: string): void {
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    chmodSync(dataDir, 0o700);
  } catch (error) {
    throw new ConfigError(
      "DATA_DIR",
      `cannot create or restrict DATA_DIR ${dataDir} (${errorCode(error)}): set DATA_DIR to a directory ` +
        "this user may create and own",
    );
  }
}

async function openStore(config: ReturnType<typeof readRuntimeConfig>, dataDir: string) {
  const where =
    config.dynamoEndpoint === undefined
      ? `the in-process store under ${join(dataDir, "dynamodb")}`
      : `DYNAMODB_ENDPOINT ${config.dynamoEndpoint}`;
  try {
    const store = await openTable({
      region: config.region,
      tableName: config.tableName,
      endpoint: config.dynamoEndpoint,
      localPath: join(dataDir, "dynamodb"),
      requestTimeoutMs: config.awsRequestTimeoutMs,
    });
    try {
      await ensureTableExists(store.table);
    } catch (error) {
      await store.close().catch(() => undefined);
      throw error;
    }
    return store;
  } catch (error) {
    throw new ConfigError(
      config.dynamoEndpoint === undefined ? "DATA_DIR" : "DYNAMODB_ENDPOINT",
      `cannot open table ${config.tableName} at ${where} (${errorCode(error)}): ` +
        (config.dynamoEndpoint === undefined
          ? "check that no other process holds DATA_DIR (stop the other npm start) and that it is writable"
          : "check that the store runs there, that AWS credentials are set, and TABLE_NAME and AWS_REGION, " +
            "or unset DYNAMODB_ENDPOINT"),
    );
  }
}

/** A Node system error's code, or an error's name; never its message, which may quote input. */
function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : errorName(error);
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : "unknown";
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    logger.error(error.message, { variable: error.variable });
  } else if (error instanceof StrongboxError) {
    logger.error("start-up failed", { code: error.code, message: error.message });
  } else if (typeof (error as NodeJS.ErrnoException).syscall === "string") {
    // A file the server needed: say which, and what to check.
    const { code, syscall, path } = error as NodeJS.ErrnoException;
    logger.error(
      `start-up failed: ${syscall} ${path ?? ""} failed (${code}); check DATA_DIR and its permissions`,
      { variable: "DATA_DIR", code, syscall, path },
    );
  } else {
    logger.error("start-up failed: unexpected error; the errorName and the code say where", {
      errorName: errorName(error),
      code: errorCode(error),
    });
  }
  process.exit(1);
});
