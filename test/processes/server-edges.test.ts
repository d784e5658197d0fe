import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServerProcess, stopAllServers } from "../../testing/server-process.ts";

/**
 * What the Node adapter of `npm start` answers to requests a browser or SDK would never send, over raw
 * sockets against the real server process: the app's JSON contract has to hold before Hono runs too.
 */

let dataDir: string;
let port: number;
let pid: number;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "strongbox-edges-"));
  const server = ServerProcess.start({ env: { DATA_DIR: dataDir } });
  port = Number(new URL(await server.listening()).port);
  pid = server.child.pid ?? 0;
});

afterAll(async () => {
  await stopAllServers();
  rmSync(dataDir, { recursive: true, force: true });
});

interface RawAnswer {
  readonly status: number;
  readonly headers: string;
  readonly body: string;
  /** The socket ended in an error (a reset) rather than a clean close. */
  readonly error?: string;
  /** Some of the answer had arrived before the last byte of the request was handed to the socket. */
  readonly answeredBeforeSent: boolean;
}

/**
 * Writes `head`, then `body` in chunks, and reads everything the server sends until it closes. With
 * `busy`, it reads nothing until it has sent everything, as a client busy uploading does: an answer a
 * reset overtook is then lost in its buffer, as curl saw it.
 */
function raw(head: string, body: readonly Buffer[] = [], busy = false): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const received: Buffer[] = [];
    let error: string | undefined;
    let answeredBeforeSent = false;
    socket.on("data", (chunk) => received.push(chunk));
    socket.on("error", (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.on("close", () => {
      const text = Buffer.concat(received).toString("latin1");
      const split = text.indexOf("\r\n\r\n");
      const headers = split === -1 ? text : text.slice(0, split);
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1] ?? 0),
        headers,
        body: split === -1 ? "" : text.slice(split + 4),
        answeredBeforeSent,
        ...(error === undefined ? {} : { error }),
      });
    });
    socket.on("connect", async () => {
      if (busy) socket.pause();
      socket.write(Buffer.from(head, "latin1"));
      for (const chunk of body) {
        if (socket.destroyed) return;
        if (!socket.write(chunk)) await new Promise((r) => socket.once("drain", r));
      }
      if (socket.destroyed) return;
      answeredBeforeSent = received.length > 0;
      socket.end(() => socket.resume());
    });
  });
}

/** The body of a chunked request, decoded enough to parse the JSON of a short answer. */
function jsonBody(answer: RawAnswer): unknown {
  const body = /transfer-encoding: chunked/i.test(answer.headers)
    ? answer.body.replace(/^[0-9a-f]+\r\n/i, "").replace(/\r\n0\r\n\r\n$/, "")
    : answer.body;
  return JSON.parse(body);
}

const isJsonError = (code: string) => ({ error: { code, message: expect.any(String) } });

describe("malformed requests answer with the JSON error shape", () => {
  const cases: [string, string][] = [
    ["a backslash in the path", "GET /v1\\tenants HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"],
    [
      "a control byte in the path",
      "GET /v1/\x01tenants HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ],
    ["a tab in the path", "GET /v1/\ttenants HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"],
    [
      "a DEL byte in the path",
      "GET /v1/\x7ftenants HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ],
    ["a Host with a space", "GET /health HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n"],
    ["no Host", "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"],
    [
      "an absolute URL of another scheme",
      "GET ftp://x/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ],
    ["garbage for a request line", "\x16\x03\x01 hello\r\n\r\n"],
  ];
  it.each(cases)("%s", async (_name, request) => {
    const answer = await raw(request);
    expect(answer.status).toBe(400);
    expect(answer.headers).toMatch(/content-type: application\/json/i);
    expect(jsonBody(answer)).toEqual(isJsonError("invalid_request"));
  });
});

describe("an upload over the limit sent with Connection: close", () => {
  // 2 MiB in 64 KiB chunks, four times the limit: the client is still sending when the 413 is ready.
  const chunk = Buffer.alloc(64 * 1024, "a");
  const chunked = [
    ...Array.from({ length: 32 }, () =>
      Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]),
    ),
    Buffer.from("0\r\n\r\n"),
  ];
  const head =
    "PUT /v1/tenants/acme/secrets/big HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
    "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

  it("is read to its end before the 413, so the client is never cut off mid-upload", async () => {
    // 14 MiB, more than loopback's socket buffers hold and under the 16 MiB the server discards: had
    // the server answered at the limit, the answer would be there before the client's last write.
    const many = Array.from({ length: 224 }, () => chunked[0] as Buffer);
    const answer = await raw(head, [...many, Buffer.from("0\r\n\r\n")]);
    expect(answer.error).toBeUndefined();
    expect(answer.answeredBeforeSent).toBe(false);
    expect(answer.status).toBe(413);
    expect(jsonBody(answer)).toEqual(isJsonError("payload_too_large"));
  });

  it("gets a readable 413 every time, never a reset", async () => {
    for (let i = 0; i < 20; i += 1) {
      const answer = await raw(head, chunked, i % 2 === 0);
      expect(answer.error, `try ${i}`).toBeUndefined();
      expect(answer.status, `try ${i}`).toBe(413);
      expect(jsonBody(answer)).toEqual(isJsonError("payload_too_large"));
    }
  });
});

/** The inodes of the sockets process `pid` holds open, from its file descriptors. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match?.[1] !== undefined) inodes.add(match[1]);
    } catch {
      // Closed between the listing and the read.
    }
  }
  return inodes;
}

/** The rows of a /proc/net table whose socket process `pid` holds, as whitespace-split fields. */
function rowsOf(pid: number, table: string): string[][] {
  const inodes = socketInodes(pid);
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/net/${table}`, "utf8");
  } catch {
    return [];
  }
  const inodeColumn = table === "unix" ? 6 : 9;
  return text
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => inodes.has(fields[inodeColumn] ?? ""));
}

describe.runIf(process.platform === "linux")("the server's dynalite", () => {
  it("listens on no TCP port: the only one the server listens on is the API's", () => {
    const listening = ["tcp", "tcp6"].flatMap((table) =>
      rowsOf(pid, table)
        .filter((fields) => fields[3] === "0A")
        .map((fields) => Number.parseInt(fields[1]?.split(":")[1] ?? "", 16)),
    );
    expect(listening).toEqual([port]);
  });

  it("listens on a Unix socket in a directory only the server's user may enter", () => {
    // Flags 00010000: a listening socket; the last field is its path.
    const paths = rowsOf(pid, "unix")
      .filter((fields) => fields[3] === "00010000" && fields[7] !== undefined)
      .map((fields) => fields[7] as string);
    expect(paths).toHaveLength(1);
    const socketPath = paths[0] as string;
    expect(statSync(socketPath).isSocket()).toBe(true);
    expect(statSync(dirname(socketPath)).mode & 0o777).toBe(0o700);
  });
});

describe("the IAM route set on npm start, which has no API Gateway in front", () => {
  const base = () => `http://127.0.0.1:${port}`;
  const admin = () => readFileSync(join(dataDir, "admin-token"), "utf8").trim();

  it("answers 401 on /iam/v1 whatever the request claims: a bearer token, headers naming an IAM principal", async () => {
    const session = "arn:aws:sts::111111111111:assumed-role/admin-caller/s";
    const response = await fetch(`${base()}/iam/v1/bindings`, {
      headers: {
        authorization: `Bearer ${admin()}`,
        "x-amzn-iam-user-arn": session,
        "x-amzn-requestcontext": JSON.stringify({
          authorizer: { iam: { userArn: session, accountId: "111111111111" } },
        }),
      },
    });
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual(isJsonError("unauthenticated"));
  });

  it("serves the binding routes to a bearer admin on /v1", async () => {
    const response = await fetch(`${base()}/v1/bindings`, {
      headers: { authorization: `Bearer ${admin()}` },
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ bindings: [] });
  });
});
