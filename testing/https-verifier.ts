import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A rotation verification hook on loopback, over real TLS: a self-signed certificate for 127.0.0.1
 * is made with the system's `openssl` (node:crypto cannot issue X.509), and the service is told to
 * trust it through `VERIFIER_CA_FILE`, the way a self-hoster trusts a local CA.
 */
export interface HttpsVerifier {
  /** `https://127.0.0.1:PORT/verify`. */
  readonly url: string;
  /** The certificate's PEM file, for `VERIFIER_CA_FILE`. */
  readonly caFile: string;
  /** Every request body received, as text. */
  readonly received: string[];
  /** What the next requests are answered: a status and a body. */
  answer(status: number, body: string): void;
  close(): Promise<void>;
}

export async function startHttpsVerifier(): Promise<HttpsVerifier> {
  const dir = mkdtempSync(join(tmpdir(), "strongbox-verifier-"));
  const keyFile = join(dir, "key.pem");
  const caFile = join(dir, "cert.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      caFile,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "ignore" },
  );
  const received: string[] = [];
  let reply = { status: 200, body: '{"ok":true}' };
  const server = createServer({ key: readFileSync(keyFile), cert: readFileSync(caFile) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      received.push(Buffer.concat(chunks).toString("utf8"));
      res.writeHead(reply.status, { "content-type": "application/json" });
      res.end(reply.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}/verify`,
    caFile,
    received,
    answer(status, body) {
      reply = { status, body };
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => {
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      });
    },
  };
}
