import { createHash, randomBytes } from "node:crypto";
import { Logger } from "@aws-lambda-powertools/logger";
import { ScanCommand as RawScanCommand } from "@aws-sdk/client-dynamodb";
import { ScanCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import type { WrappedDataKey } from "../../shared/domain/types.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { flipEnvelopeBit, getRawItem, headKey, putRawItem } from "../../testing/faults.ts";
import {
  type ApiResponse,
  type Harness,
  randomKek,
  startHarness,
  startStore,
} from "../../testing/harness.ts";
import { iamApiEvent } from "../../testing/http-api-event.ts";
import { lambdaCaller } from "../../testing/lambda-call.ts";
import { captureProcessOutput, type OutputCapture } from "../../testing/output-capture.ts";

/**
 * Canary values: distinctive secrets fed through every path, then searched for in everything the
 * service emits or stores. Byte secrets (KEKs, DEKs) are searched for in every text encoding a careless
 * log line or error could use, and as raw bytes in the table's binary attributes.
 */
interface Needle {
  readonly label: string;
  readonly texts: readonly string[];
  readonly bytes: Uint8Array;
}

/** base64 of `bytes` as it appears inside a longer base64 blob that starts `shift` bytes earlier. */
function base64Fragment(bytes: Uint8Array, shift: number, encoding: "base64" | "base64url"): string {
  const encoded = Buffer.concat([Buffer.alloc(shift), bytes, Buffer.alloc(3)]).toString(encoding);
  // Characters mixing in bits of the neighbours are dropped: a whole group at each end.
  const start = shift === 0 ? 0 : 4;
  const end = Math.floor(((shift + bytes.length) * 4) / 3 / 4) * 4;
  return encoded.slice(start, end);
}

function needle(label: string, secret: string | Uint8Array): Needle {
  const bytes = typeof secret === "string" ? new Uint8Array(Buffer.from(secret, "utf8")) : secret;
  const buffer = Buffer.from(bytes);
  const texts = new Set<string>([buffer.toString("hex"), buffer.toString("hex").toUpperCase()]);
  if (typeof secret === "string") texts.add(secret);
  for (const encoding of ["base64", "base64url"] as const) {
    for (const shift of [0, 1, 2]) texts.add(base64Fragment(bytes, shift, encoding));
  }
  return { label, texts: [...texts].filter((text) => text.length >= 16), bytes };
}

function leaksIn(haystack: string, needles: readonly Needle[]): string[] {
  return needles.filter((n) => n.texts.some((text) => haystack.includes(text))).map((n) => n.label);
}

function byteLeaksIn(blobs: readonly Uint8Array[], needles: readonly Needle[]): string[] {
  return needles
    .filter((n) => blobs.some((blob) => Buffer.from(blob).includes(Buffer.from(n.bytes))))
    .map((n) => n.label);
}

/** JSON with binary attributes as base64, as DynamoDB's own wire format writes them. */
const stringify = (value: unknown): string =>
  JSON.stringify(value, (_key, v) =>
    v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v instanceof Set ? [...v] : v,
  );

function binaryValues(value: unknown, out: Uint8Array[] = []): Uint8Array[] {
  if (value instanceof Uint8Array) out.push(value);
  else if (value instanceof Set || Array.isArray(value)) for (const v of value) binaryValues(v, out);
  else if (typeof value === "object" && value !== null)
    for (const v of Object.values(value)) binaryValues(v, out);
  return out;
}

interface Exchange {
  readonly label: string;
  readonly response: ApiResponse;
  /** Needles this response exists to hand out: the value of a successful read, a token just created. */
  readonly discloses: readonly string[];
}

const CANARY_V1 = `canary-v1-${randomBytes(16).toString("hex")}`;
const CANARY_V2 = `canary-v2-${randomBytes(16).toString("hex")}`;
const FORGED_TOKEN_SECRET = randomBytes(32).toString("hex");
const FORGED_ITEM_SECRET = randomBytes(32).toString("hex");
const KEK = randomKek();
const OTHER_KEK = randomKek();

const exchanges: Exchange[] = [];
const tokens: { label: string; token: string }[] = [];
const auditEvents: Record<string, unknown>[] = [];
let rawScan: Record<string, unknown>[] = [];
let docScan: Record<string, unknown>[] = [];
let deks: { label: string; plaintext: Uint8Array }[] = [];
/** The keys that seal token items, derived here the way the service derives them, so leaks can be searched for. */
let itemKeys: { label: string; key: Uint8Array }[] = [];
let output: OutputCapture | undefined;
let store: { dynamo: LocalDynamo; table: Table };

function secretNeedles(): Needle[] {
  return [
    needle("secret value v1", CANARY_V1),
    needle("secret value v2", CANARY_V2),
    needle("forged token secret", FORGED_TOKEN_SECRET),
    needle("forged token item's secret", FORGED_ITEM_SECRET),
    needle("KEK", KEK),
    needle("other KEK", OTHER_KEK),
    ...tokens.flatMap(({ label, token }) => [
      needle(label, token),
      needle(`${label} secret half`, token.split("_")[2] ?? ""),
    ]),
    ...deks.map(({ label, plaintext }) => needle(label, plaintext)),
    ...itemKeys.map(({ label, key }) => needle(label, key)),
  ];
}

async function scanAll(table: Table, raw: boolean): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, any> | undefined;
  do {
    const input = {
      TableName: table.name,
      ConsistentRead: true,
      ...(start ? { ExclusiveStartKey: start } : {}),
    };
    const page = raw
      ? await table.doc.send(new RawScanCommand(input))
      : await table.doc.send(new ScanCommand(input));
    items.push(...((page.Items ?? []) as Record<string, unknown>[]));
    start = page.LastEvaluatedKey;
  } while (start !== undefined);
  return items;
}

beforeAll(async () => {
  output = captureProcessOutput();
  const logger = new Logger({ serviceName: "strongbox-canary", logLevel: "DEBUG" });
  const keyring = new LocalKeyring({ active: KEK, previous: [] });
  const otherKeyring = new LocalKeyring({ active: OTHER_KEK, previous: [] });
  itemKeys = [
    { label: "item integrity key", key: (await keyring.chainKeys().itemKeys().current()).key },
    {
      label: "other KEK's item integrity key",
      key: (await otherKeyring.chainKeys().itemKeys().current()).key,
    },
  ];
  store = await startStore();
  const h = await startHarness({ store, keyring, logger });
  // The same table under a KEK that wrapped none of its DEKs: the kek_mismatch path.
  const wrongKek = await startHarness({ store, keyring: otherKeyring, logger });

  const issue = async (label: string, role: Parameters<Harness["token"]>[0], tenants: string[] = []) => {
    const token = await h.token(role, tenants);
    tokens.push({ label, token });
    return token;
  };
  const admin = await issue("admin token", "admin");
  const runner = await issue("runner token", "runner", ["acme"]);
  const foreignOperator = await issue("globex operator token", "operator", ["globex"]);
  const auditor = await issue("auditor token", "auditor", ["acme"]);
  const adminId = admin.split("_")[1];
  // Token items are sealed under a key drawn from the KEK, so the other KEK's instance has its own admin.
  const wrongKekAdmin = await wrongKek.token("admin");
  tokens.push({ label: "other KEK's admin token", token: wrongKekAdmin });

  const call = async (
    label: string,
    expectedStatus: number,
    method: string,
    path: string,
    options: Parameters<Harness["call"]>[2] & { via?: Harness; discloses?: string[] } = {},
  ) => {
    const { via = h, discloses = [], ...request } = options;
    const response = await via.call(method, path, request);
    exchanges.push({ label, response, discloses });
    expect(response.status, `${label}: ${response.text}`).toBe(expectedStatus);
    return response;
  };
  const reason = { "x-audit-reason": "canary sweep" };
  const secret = "/v1/tenants/acme/secrets/api-key";

  // Success paths.
  await call("health", 200, "GET", "/health");
  await call("health report", 200, "GET", "/v1/health", { token: admin });
  await call("create acme", 201, "POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } });
  await call("create globex", 201, "POST", "/v1/tenants", { token: admin, body: { tenantId: "globex" } });
  await call("tenant metadata", 200, "GET", "/v1/tenants/acme", { token: admin });
  await call("write v1", 200, "PUT", secret, { token: admin, body: { value: CANARY_V1 } });
  await call("write v2", 200, "PUT", secret, { token: admin, body: { value: CANARY_V2, cas: 1 } });
  await call("read current", 200, "GET", secret, {
    token: admin,
    headers: reason,
    discloses: ["secret value v2"],
  });
  await call("read v1", 200, "GET", `${secret}?version=1`, {
    token: admin,
    headers: reason,
    discloses: ["secret value v1"],
  });
  await call("runner read", 200, "GET", secret, {
    token: runner,
    headers: reason,
    discloses: ["secret value v2"],
  });
  await call("list", 200, "GET", "/v1/tenants/acme/secrets", { token: admin });
  await call("write globex", 200, "PUT", "/v1/tenants/globex/secrets/api-key", {
    token: foreignOperator,
    body: { value: CANARY_V1 },
  });
  await call("write doomed", 200, "PUT", "/v1/tenants/acme/secrets/doomed", {
    token: admin,
    body: { value: CANARY_V1 },
  });
  await call("delete", 204, "DELETE", "/v1/tenants/acme/secrets/doomed", { token: admin });
  const created = await call("create token", 201, "POST", "/v1/tokens", {
    token: admin,
    body: { role: "runner", tenants: ["acme"], ttlSeconds: 600 },
    discloses: ["api-issued token", "api-issued token secret half"],
  });
  const issued = await created.json();
  tokens.push({ label: "api-issued token", token: issued.token });
  await call("api token read", 200, "GET", secret, {
    token: issued.token,
    headers: reason,
    discloses: ["secret value v2"],
  });
  await call("revoke token", 204, "DELETE", `/v1/tokens/${issued.id}`, { token: admin });
  await call("auditor read", 200, "GET", "/v1/tenants/acme/audit", { token: auditor });
  // IAM callers: a binding, then reads on the IAM route set as API Gateway's IAM route delivers them.
  const bindingCreated = await call("create binding", 201, "POST", "/v1/bindings", {
    token: admin,
    body: { principalArn: "arn:aws:iam::111111111111:role/canary-reader", role: "runner", tenants: ["acme"] },
  });
  const viaLambda = lambdaCaller(h.app);
  const callIam = async (
    label: string,
    expectedStatus: number,
    userArn: string,
    headers: Record<string, string>,
    discloses: string[] = [],
  ) => {
    const response = await viaLambda(iamApiEvent("GET", `/iam${secret}`, userArn, { headers }));
    exchanges.push({ label, response, discloses });
    expect(response.status, `${label}: ${response.text}`).toBe(expectedStatus);
  };
  const session = "arn:aws:sts::111111111111:assumed-role/canary-reader/canary";
  await callIam("iam read", 200, session, reason, ["secret value v2"]);
  await callIam(
    "iam read with a bearer token too",
    200,
    session,
    { ...reason, authorization: `Bearer ${admin}` },
    ["secret value v2"],
  );
  await callIam("unbound iam read", 403, "arn:aws:sts::111111111111:assumed-role/never-bound/s", reason);
  await call("list bindings", 200, "GET", "/v1/bindings", { token: admin });
  await call("binding for a canary ARN", 400, "POST", "/v1/bindings", {
    token: admin,
    body: {
      principalArn: `arn:aws:iam::111111111111:role/${CANARY_V2}/*`,
      role: "runner",
      tenants: ["acme"],
    },
  });
  await call("delete binding", 204, "DELETE", `/v1/bindings/${(await bindingCreated.json()).bindingId}`, {
    token: admin,
  });

  // Error paths, each carrying a canary where a client could put one.
  await call("bad JSON", 400, "PUT", secret, { token: admin, body: `{"value":"${CANARY_V1}` });
  await call("value over 64 KiB", 400, "PUT", secret, {
    token: admin,
    body: { value: CANARY_V1.repeat(Math.ceil(65_537 / CANARY_V1.length)) },
  });
  await call("body over 512 KiB", 413, "PUT", secret, {
    token: admin,
    body: { value: CANARY_V1.repeat(Math.ceil(530_000 / CANARY_V1.length)) },
  });
  await call("wrong field", 400, "PUT", secret, { token: admin, body: { value: CANARY_V1, [CANARY_V2]: 1 } });
  await call("cas conflict", 409, "PUT", secret, { token: admin, body: { value: CANARY_V1, cas: 0 } });
  await call("runner writes", 403, "PUT", secret, { token: runner, body: { value: CANARY_V1 } });
  await call("auditor reads", 403, "GET", secret, { token: auditor, headers: reason });
  await call("other tenant writes", 403, "PUT", secret, {
    token: foreignOperator,
    body: { value: CANARY_V1 },
  });
  await call("other tenant reads", 403, "GET", secret, { token: foreignOperator, headers: reason });
  await call("revoked token", 401, "GET", secret, { token: issued.token, headers: reason });
  await call("canary as token", 401, "GET", secret, { token: CANARY_V1, headers: reason });
  await call("canary as header", 401, "GET", secret, { headers: { ...reason, authorization: CANARY_V2 } });
  await call("forged secret half", 401, "GET", secret, {
    token: `sbx_${adminId}_${FORGED_TOKEN_SECRET}`,
    headers: reason,
  });
  // A token item written straight into the table, with the admin's MAC copied over: refused as unknown.
  const adminItem = await getRawItem(store.table, { pk: `TOKEN#${adminId}`, sk: "TOKEN" });
  const forgedId = `forged${"a".repeat(20)}`;
  await putRawItem(store.table, {
    ...adminItem,
    pk: `TOKEN#${forgedId}`,
    tokenId: forgedId,
    secretHash: new Uint8Array(createHash("sha256").update(FORGED_ITEM_SECRET).digest()),
  });
  await call("forged token item", 401, "GET", secret, {
    token: `sbx_${forgedId}_${FORGED_ITEM_SECRET}`,
    headers: reason,
  });
  await call("missing version", 404, "GET", `${secret}?version=9`, { token: admin, headers: reason });
  await call("missing secret", 404, "GET", "/v1/tenants/acme/secrets/nope", {
    token: admin,
    headers: reason,
  });
  await call("no reason", 400, "GET", secret, { token: admin });
  await call("write tampered", 200, "PUT", "/v1/tenants/acme/secrets/tampered", {
    token: admin,
    body: { value: CANARY_V1 },
  });
  await flipEnvelopeBit(store.table, headKey("acme", "tampered"), 20);
  await call("tampered read", 500, "GET", "/v1/tenants/acme/secrets/tampered", {
    token: admin,
    headers: reason,
  });
  await call("KEK mismatch read", 503, "GET", secret, {
    via: wrongKek,
    token: wrongKekAdmin,
    headers: reason,
  });
  await call("KEK mismatch write", 503, "PUT", secret, {
    via: wrongKek,
    token: wrongKekAdmin,
    body: { value: CANARY_V1 },
  });
  await call("KEK mismatch health", 503, "GET", "/health", { via: wrongKek });
  await call("KEK mismatch health report", 503, "GET", "/v1/health", { via: wrongKek, token: wrongKekAdmin });

  // The audit trail through the API, as an operator would read it.
  for (const path of ["/v1/tenants/acme/audit", "/v1/tenants/globex/audit", "/v1/audit"]) {
    const response = await call(`audit ${path}`, 200, "GET", `${path}?limit=999`, { token: admin });
    auditEvents.push(...(await response.json()).events);
  }

  rawScan = await scanAll(store.table, true);
  docScan = await scanAll(store.table, false);
  // The DEKs in plaintext, unwrapped with the known KEK, so their bytes can be searched for.
  deks = await Promise.all(
    docScan
      .filter((item) => item.sk === "TENANT")
      .flatMap((item) =>
        (item.dataKeys as WrappedDataKey[]).map(async (key) => ({
          label: `DEK v${key.version} of ${String(item.tenantId)}`,
          plaintext: await keyring.unwrap(key, { tenantId: String(item.tenantId), dekVersion: key.version }),
        })),
      ),
  );
});

afterAll(async () => {
  output?.restore();
  await store?.dynamo.close();
});

const logLines = () =>
  (output?.writes ?? [])
    .join("")
    .split("\n")
    .filter((line) => line.trim() !== "");

describe("canary sweep", () => {
  it("the leak detector finds every needle in each encoding, even inside a longer base64 blob", () => {
    const needles = secretNeedles();
    for (const n of needles) {
      const buffer = Buffer.from(n.bytes);
      for (const shift of [0, 1, 2]) {
        const blob = Buffer.concat([randomBytes(shift + 3), buffer, randomBytes(5)]);
        for (const encoding of ["base64", "base64url", "hex"] as const) {
          expect(leaksIn(`x${blob.toString(encoding)}x`, [n]), `${n.label} ${encoding} +${shift}`).toEqual([
            n.label,
          ]);
        }
      }
      expect(byteLeaksIn([Buffer.concat([randomBytes(7), buffer])], [n])).toEqual([n.label]);
    }
  });

  it("every collection was actually filled: one access log line per request, audit events, DEKs", () => {
    const lines = logLines();
    const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const accessLines = parsed.filter((line) => line.message === "request");
    expect(accessLines).toHaveLength(exchanges.length);
    for (const { label, response } of exchanges) {
      const requestId = response.headers.get("x-request-id");
      expect(requestId, label).toBeTruthy();
      expect(
        accessLines.some((line) => line.requestId === requestId),
        label,
      ).toBe(true);
    }
    // The 5xx paths log their error too, so error messages are part of what was searched.
    expect(parsed.filter((line) => line.level === "ERROR").length).toBeGreaterThanOrEqual(3);
    expect(auditEvents.length).toBeGreaterThan(20);
    expect(new Set(auditEvents.map((event) => event.outcome))).toEqual(
      new Set(["attempt", "success", "denied", "failure"]),
    );
    expect(rawScan.length).toBe(docScan.length);
    expect(deks.map((dek) => dek.label).sort()).toEqual(["DEK v1 of acme", "DEK v1 of globex"]);
    expect(tokens).toHaveLength(6);
    expect(itemKeys).toHaveLength(2);
  });

  it("responses do carry what they exist to hand out (the value of a read, a new token)", () => {
    const needles = secretNeedles();
    for (const { label, response, discloses } of exchanges) {
      for (const disclosed of discloses) {
        expect(leaksIn(response.text, needles), label).toContain(disclosed);
      }
    }
    expect(exchanges.filter((e) => e.discloses.length > 0)).toHaveLength(7);
  });

  it("no log line contains a secret value, a token, a DEK or a KEK", () => {
    const needles = secretNeedles();
    const leaks = logLines().flatMap((line) => leaksIn(line, needles).map((label) => `${label} in ${line}`));
    expect(leaks).toEqual([]);
  });

  it("no response body or header carries a secret it was not asked for", () => {
    const needles = secretNeedles();
    const leaks = exchanges.flatMap(({ label, response, discloses }) => {
      const headers = stringify([...response.headers.entries()]);
      return leaksIn(`${response.text}\n${headers}`, needles)
        .filter((found) => !discloses.includes(found))
        .map((found) => `${found} in ${label} (${response.status}): ${response.text.slice(0, 300)}`);
    });
    expect(leaks).toEqual([]);
  });

  it("every error body is exactly {error:{code,message}}", async () => {
    // /health and /v1/health answer 503 with their status or report, by design; every other refusal is an error body.
    const errors = exchanges.filter((e) => e.response.status >= 400 && !e.label.includes("health"));
    expect(errors.length).toBeGreaterThanOrEqual(15);
    for (const { label, response } of errors) {
      const body = await response.json();
      expect(Object.keys(body), label).toEqual(["error"]);
      expect(Object.keys(body.error).sort(), label).toEqual(["code", "message"]);
    }
  });

  it("no audit record contains a secret value, a token, a DEK or a KEK", () => {
    const needles = secretNeedles();
    const auditItems = rawScan.filter((item) => stringify(item.pk).includes("AUDIT#"));
    // The three audit reads that produced auditEvents each appended one more record afterwards.
    expect(auditItems.length).toBe(auditEvents.length + 3);
    const leaks = [...auditEvents, ...auditItems].flatMap((event) =>
      leaksIn(stringify(event), needles).map((label) => `${label} in ${stringify(event)}`),
    );
    expect(leaks).toEqual([]);
  });

  it("no table item holds a secret value, a token, a DEK or a KEK, as text or as raw bytes", () => {
    const needles = secretNeedles();
    const textLeaks = [...rawScan, ...docScan].flatMap((item) =>
      leaksIn(stringify(item), needles).map((label) => `${label} in ${stringify(item).slice(0, 300)}`),
    );
    expect(textLeaks).toEqual([]);
    const blobs = binaryValues(docScan);
    // Envelopes, wrapped DEKs and token hashes at least.
    expect(blobs.length).toBeGreaterThan(8);
    expect(byteLeaksIn(blobs, needles)).toEqual([]);
  });
});
