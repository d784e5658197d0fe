import { request } from "node:https";
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import type {
  RotationVerifier,
  VerificationCall,
  VerificationResult,
  VerifierSpec,
} from "../domain/verification.ts";

export interface HookVerifierOptions {
  readonly region: string;
  /** PEM certificates to trust for HTTPS hooks besides the system's (`VERIFIER_CA_FILE`): a local CA. */
  readonly ca?: string;
  /** Only for pointing the SDK at a Lambda-protocol test endpoint. */
  readonly lambdaEndpoint?: string;
  readonly timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 5000;
/** A hook's answer is small; anything longer is not an answer. */
const MAX_ANSWER_BYTES = 4096;

/** Success is a JSON object with `"ok": true`; anything else, or no answer, is a failure. */
function answered(text: string): boolean {
  try {
    const parsed = JSON.parse(text) as unknown;
    return typeof parsed === "object" && parsed !== null && (parsed as { ok?: unknown }).ok === true;
  } catch {
    return false;
  }
}

/**
 * Calls a rotation policy's verification hook with `{tenant, name, pendingVersion}` only. HTTPS hooks
 * must answer 2xx with `{"ok":true}` within the timeout, over TLS verified against the system's CAs
 * and `ca`; Lambda hooks (invoked synchronously) must return the same payload without a FunctionError.
 * Nothing the hook answers is logged or recorded beyond a status: it might echo what it read.
 */
export class HookVerifier implements RotationVerifier {
  readonly #options: HookVerifierOptions;
  #lambda: LambdaClient | undefined;

  constructor(options: HookVerifierOptions) {
    this.#options = options;
  }

  verify(spec: VerifierSpec, call: VerificationCall): Promise<VerificationResult> {
    const body = JSON.stringify({
      tenant: call.tenant,
      name: call.name,
      pendingVersion: call.pendingVersion,
    });
    return "url" in spec ? this.#https(spec.url, body) : this.#invoke(spec.lambdaArn, body);
  }

  #https(url: string, body: string): Promise<VerificationResult> {
    return new Promise((resolve) => {
      const req = request(
        url,
        {
          method: "POST",
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
          timeout: this.#options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          ...(this.#options.ca === undefined ? {} : { ca: this.#options.ca }),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size <= MAX_ANSWER_BYTES) chunks.push(chunk);
          });
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            const ok = status >= 200 && status < 300 && answered(Buffer.concat(chunks).toString("utf8"));
            resolve({
              ok,
              detail: ok ? `verifier answered ${status} ok` : `verifier answered ${status}, not ok`,
            });
          });
          res.on("error", () => resolve({ ok: false, detail: "verifier answer broke off" }));
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (error: NodeJS.ErrnoException) =>
        resolve({ ok: false, detail: `verifier unreachable (${error.code ?? error.message})` }),
      );
      req.end(body);
    });
  }

  async #invoke(arn: string, body: string): Promise<VerificationResult> {
    this.#lambda ??= new LambdaClient({
      region: this.#options.region,
      ...(this.#options.lambdaEndpoint === undefined ? {} : { endpoint: this.#options.lambdaEndpoint }),
    });
    try {
      const output = await this.#lambda.send(
        new InvokeCommand({
          FunctionName: arn,
          InvocationType: "RequestResponse",
          Payload: Buffer.from(body),
        }),
      );
      if (output.FunctionError !== undefined) return { ok: false, detail: "verifier function failed" };
      const ok = answered(Buffer.from(output.Payload ?? new Uint8Array()).toString("utf8"));
      return { ok, detail: ok ? "verifier function answered ok" : "verifier function answered not ok" };
    } catch (error) {
      return {
        ok: false,
        detail: `verifier function not invoked (${error instanceof Error ? error.name : "error"})`,
      };
    }
  }
}
