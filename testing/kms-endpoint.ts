/**
 * A test double for AWS KMS: no KMS emulator runs on this machine, so this loopback server speaks just
 * enough of the KMS wire protocol for the real `@aws-sdk/client-kms` to talk to it over HTTP.
 *
 * The installed client (3.1162) uses awsJson1_1: `POST /`, `Content-Type: application/x-amz-json-1.1`,
 * `X-Amz-Target: TrentService.<Operation>`, JSON bodies with blobs in base64, errors as
 * `{"__type":"<ErrorName>","message":"..."}`. Signatures are not checked.
 *
 * The crypto is real so that tests prove what the keyring binds, not what the fake assumes: each key has
 * its own AES-256 key, and a ciphertext blob names the key that sealed it and is AES-256-GCM bound to the
 * canonicalised encryption context, so a wrong key or context genuinely fails to open.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

const REGION = "us-east-1";
const ACCOUNT = "111122223333";
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface KmsEndpointOptions {
  /** How many keys exist at start; they get the predictable ids `initialKeyId(1..n)`. Default 1. */
  readonly keys?: number;
  /** Alias name (`alias/...`) to key id or key ARN. */
  readonly aliases?: Record<string, string>;
  /** Keys that exist at start under the ARNs a deployment gives them (the IAM contract's stage). */
  readonly at?: readonly {
    readonly arn: string;
    readonly usage?: "ENCRYPT_DECRYPT" | "GENERATE_VERIFY_MAC";
    readonly aliases?: readonly string[];
  }[];
}

export interface KmsEndpoint {
  /** `http://127.0.0.1:PORT`, for `new KMSClient({ endpoint })`. */
  readonly endpoint: string;
  /** The key ARN behind a key id, key ARN, alias name or alias ARN; throws if there is none. */
  keyArn(aliasOrId: string): string;
  /** Creates a fresh key and returns its ARN. */
  createKey(): string;
  /** Creates a fresh HMAC_256 key (usage GENERATE_VERIFY_MAC) and returns its ARN. */
  createHmacKey(): string;
  /** Creates a fresh key under the ARN a deployment gives it. */
  addKey(arn: string, usage?: "ENCRYPT_DECRYPT" | "GENERATE_VERIFY_MAC"): string;
  /** Requests received per operation, failed ones included. */
  readonly calls: Record<string, number>;
  totalCalls(): number;
  resetCalls(): void;
  /** The next `count` calls of `operation` (or of any operation, for `"*"`) fail with `errorType`. */
  failNext(operation: string, errorType?: string, count?: number): void;
  setLatency(ms: number): void;
  close(): Promise<void>;
}

interface Key {
  readonly id: string;
  readonly arn: string;
  readonly material: Buffer;
  readonly created: number;
  readonly usage: "ENCRYPT_DECRYPT" | "GENERATE_VERIFY_MAC";
}

type Body = Record<string, unknown>;

class KmsError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The id of the key a ciphertext blob of this endpoint names, as KMS reads the key from the blob's
 * metadata when Decrypt or ReEncrypt is given no key id; undefined when the blob is not one of ours.
 */
export function ciphertextKeyId(blob: string): string | undefined {
  const bytes = Buffer.from(blob, "base64");
  const length = bytes[0] ?? 0;
  return length === 0 || bytes.length < 1 + length ? undefined : bytes.subarray(1, 1 + length).toString();
}

/** Deterministic so that `aliases` can point at the initial keys before the endpoint exists. */
export function initialKeyId(n: number): string {
  return `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
}

export async function startKmsEndpoint(options: KmsEndpointOptions = {}): Promise<KmsEndpoint> {
  const keys = new Map<string, Key>();
  const aliases = new Map<string, string>();
  const calls: Record<string, number> = {};
  const failures: { operation: string; errorType: string; remaining: number }[] = [];
  let latencyMs = 0;

  const addKey = (
    id: string,
    usage: Key["usage"] = "ENCRYPT_DECRYPT",
    arn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/${id}`,
  ): Key => {
    const key = {
      id,
      arn,
      material: randomBytes(32),
      created: Math.floor(Date.now() / 1000),
      usage,
    };
    keys.set(id, key);
    return key;
  };

  const findKey = (ref: string): Key | undefined => {
    // Any region and account: keys made with `at` carry the deployment's.
    const local = ref.replace(/^arn:[^:]+:kms:[^:]*:[^:]*:/, "");
    if (local.startsWith("alias/")) {
      const target = aliases.get(local);
      return target === undefined ? undefined : keys.get(target);
    }
    return keys.get(local.startsWith("key/") ? local.slice("key/".length) : local);
  };

  const requireKey = (ref: unknown, field: string, usage: Key["usage"] = "ENCRYPT_DECRYPT"): Key => {
    if (typeof ref !== "string" || ref === "")
      throw new KmsError("ValidationException", `${field} is required`);
    const key = findKey(ref);
    if (key === undefined) throw new KmsError("NotFoundException", `Key '${ref}' does not exist`);
    // As in KMS, an HMAC key cannot encrypt and a symmetric encryption key cannot make MACs.
    if (key.usage !== usage) throw new KmsError("InvalidKeyUsageException", `${key.arn} is not for ${usage}`);
    return key;
  };

  for (let n = 1; n <= (options.keys ?? 1); n++) addKey(initialKeyId(n));
  for (const key of options.at ?? []) {
    const added = addKey(key.arn.slice(key.arn.lastIndexOf("/") + 1), key.usage, key.arn);
    for (const alias of key.aliases ?? []) aliases.set(alias, added.id);
  }
  for (const [alias, target] of Object.entries(options.aliases ?? {})) {
    const key = findKey(target);
    if (key === undefined) throw new Error(`alias ${alias} points at unknown key ${target}`);
    aliases.set(alias.startsWith("alias/") ? alias : `alias/${alias}`, key.id);
  }

  // Order-independent, so that the same context in another key order still opens, as in real KMS.
  const contextAad = (context: unknown): Buffer => {
    const entries = Object.entries((context ?? {}) as Record<string, string>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return Buffer.from(JSON.stringify(entries));
  };

  // Blob layout: [id length][key id][iv][tag][ciphertext]. The key id is also authenticated.
  const seal = (key: Key, plaintext: Buffer, context: unknown): Buffer => {
    const id = Buffer.from(key.id);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", key.material, iv);
    cipher.setAAD(Buffer.concat([id, contextAad(context)]));
    const sealed = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([Buffer.of(id.length), id, iv, cipher.getAuthTag(), sealed]);
  };

  const open = (blobField: unknown, context: unknown): { key: Key; plaintext: Buffer } => {
    const invalid = new KmsError("InvalidCiphertextException", "The ciphertext is invalid");
    if (typeof blobField !== "string") throw invalid;
    const blob = Buffer.from(blobField, "base64");
    const idLength = blob[0] ?? 0;
    const ivStart = 1 + idLength;
    const tagStart = ivStart + IV_BYTES;
    const bodyStart = tagStart + TAG_BYTES;
    if (idLength === 0 || blob.length < bodyStart) throw invalid;
    const id = blob.subarray(1, ivStart);
    const key = keys.get(id.toString());
    if (key === undefined) throw invalid;
    try {
      const decipher = createDecipheriv("aes-256-gcm", key.material, blob.subarray(ivStart, tagStart));
      decipher.setAAD(Buffer.concat([id, contextAad(context)]));
      decipher.setAuthTag(blob.subarray(tagStart, bodyStart));
      return { key, plaintext: Buffer.concat([decipher.update(blob.subarray(bodyStart)), decipher.final()]) };
    } catch {
      throw invalid;
    }
  };

  // As in KMS, naming a key on decrypt is an assertion about the blob, checked before the context is.
  const openAs = (blob: unknown, keyRef: unknown, context: unknown): { key: Key; plaintext: Buffer } => {
    const expected = keyRef === undefined ? undefined : requireKey(keyRef, "KeyId");
    const opened = open(blob, context);
    if (expected !== undefined && expected.id !== opened.key.id) {
      throw new KmsError("IncorrectKeyException", "The key ID in the request does not identify the CMK");
    }
    return opened;
  };

  const operations: Record<string, (body: Body) => Body> = {
    GenerateDataKey(body) {
      const key = requireKey(body.KeyId, "KeyId");
      const bytes = body.KeySpec === "AES_256" ? 32 : body.KeySpec === "AES_128" ? 16 : body.NumberOfBytes;
      if (typeof bytes !== "number" || bytes < 1 || bytes > 1024) {
        throw new KmsError("ValidationException", "KeySpec or NumberOfBytes is required");
      }
      const plaintext = randomBytes(bytes);
      return {
        KeyId: key.arn,
        Plaintext: plaintext.toString("base64"),
        CiphertextBlob: seal(key, plaintext, body.EncryptionContext).toString("base64"),
      };
    },
    Decrypt(body) {
      const { key, plaintext } = openAs(body.CiphertextBlob, body.KeyId, body.EncryptionContext);
      return {
        KeyId: key.arn,
        Plaintext: plaintext.toString("base64"),
        EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
      };
    },
    ReEncrypt(body) {
      const destination = requireKey(body.DestinationKeyId, "DestinationKeyId");
      const source = openAs(body.CiphertextBlob, body.SourceKeyId, body.SourceEncryptionContext);
      return {
        CiphertextBlob: seal(destination, source.plaintext, body.DestinationEncryptionContext).toString(
          "base64",
        ),
        KeyId: destination.arn,
        SourceKeyId: source.key.arn,
        SourceEncryptionAlgorithm: "SYMMETRIC_DEFAULT",
        DestinationEncryptionAlgorithm: "SYMMETRIC_DEFAULT",
      };
    },
    GenerateMac(body) {
      const key = requireKey(body.KeyId, "KeyId", "GENERATE_VERIFY_MAC");
      if (body.MacAlgorithm !== "HMAC_SHA_256") {
        throw new KmsError("InvalidKeyUsageException", "an HMAC_256 key supports only HMAC_SHA_256");
      }
      if (typeof body.Message !== "string" || body.Message === "") {
        throw new KmsError("ValidationException", "Message is required");
      }
      const mac = createHmac("sha256", key.material).update(Buffer.from(body.Message, "base64")).digest();
      return { KeyId: key.arn, Mac: mac.toString("base64"), MacAlgorithm: "HMAC_SHA_256" };
    },
    DescribeKey(body) {
      const key = findKey(typeof body.KeyId === "string" ? body.KeyId : "");
      if (key === undefined) throw new KmsError("NotFoundException", `Key '${body.KeyId}' does not exist`);
      const hmac = key.usage === "GENERATE_VERIFY_MAC";
      return {
        KeyMetadata: {
          AWSAccountId: ACCOUNT,
          KeyId: key.id,
          Arn: key.arn,
          CreationDate: key.created,
          Enabled: true,
          KeyState: "Enabled",
          KeySpec: hmac ? "HMAC_256" : "SYMMETRIC_DEFAULT",
          KeyUsage: key.usage,
          KeyManager: "CUSTOMER",
          Origin: "AWS_KMS",
          ...(hmac ? { MacAlgorithms: ["HMAC_SHA_256"] } : { EncryptionAlgorithms: ["SYMMETRIC_DEFAULT"] }),
        },
      };
    },
  };

  const takeFailure = (operation: string): string | undefined => {
    const failure = failures.find(
      (f) => f.remaining > 0 && (f.operation === operation || f.operation === "*"),
    );
    if (failure === undefined) return undefined;
    failure.remaining--;
    return failure.errorType;
  };

  const respond = (res: ServerResponse, status: number, body: Body): void => {
    res.writeHead(status, { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": randomUUID() });
    res.end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));

    const target = req.headers["x-amz-target"];
    const operation = typeof target === "string" ? target.replace(/^TrentService\./, "") : "";
    calls[operation] = (calls[operation] ?? 0) + 1;
    try {
      if (req.method !== "POST" || typeof target !== "string" || !target.startsWith("TrentService.")) {
        throw new KmsError("UnknownOperationException", `unsupported request ${req.method} ${target}`);
      }
      const injected = takeFailure(operation);
      if (injected !== undefined) throw new KmsError(injected, `injected ${injected} for ${operation}`);
      const handler = operations[operation];
      if (handler === undefined) throw new KmsError("UnknownOperationException", `${operation} is not faked`);
      const text = Buffer.concat(chunks).toString("utf8");
      respond(res, 200, handler(text === "" ? {} : (JSON.parse(text) as Body)));
    } catch (error) {
      if (!(error instanceof KmsError)) throw error;
      // KMS reports its own faults as 5xx and everything else as 400; the SDK reads the type from __type.
      respond(res, error.type === "KMSInternalException" ? 500 : 400, {
        __type: error.type,
        message: error.message,
      });
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      respond(res, 500, { __type: "KMSInternalException", message: String(error) });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    keyArn(aliasOrId) {
      const key = findKey(aliasOrId);
      if (key === undefined) throw new Error(`no key behind ${aliasOrId}`);
      return key.arn;
    },
    createKey: () => addKey(randomUUID()).arn,
    createHmacKey: () => addKey(randomUUID(), "GENERATE_VERIFY_MAC").arn,
    addKey: (arn, usage) => addKey(arn.slice(arn.lastIndexOf("/") + 1), usage, arn).arn,
    totalCalls: () => Object.values(calls).reduce((sum, n) => sum + n, 0),
    resetCalls() {
      // In place, so a test holding `calls` sees the reset.
      for (const name of Object.keys(calls)) delete calls[name];
    },
    failNext(operation, errorType = "KMSInternalException", count = 1) {
      failures.push({ operation, errorType, remaining: count });
    },
    setLatency(ms) {
      latencyMs = ms;
    },
    close() {
      // The SDK keeps connections alive; without this, close() would wait for them to idle out.
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
