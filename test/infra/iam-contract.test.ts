import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DynamoDBClient, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import {
  DecryptCommand,
  GenerateDataKeyCommand,
  GenerateMacCommand,
  KMSClient,
  ReEncryptCommand,
} from "@aws-sdk/client-kms";
import {
  DeleteBucketPolicyCommand,
  DeleteObjectCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectRetentionCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrapToken } from "../../shared/crypto/tokens.ts";
import { DAY_MS } from "../../shared/domain/time.ts";
import { type Bundle, buildBundle, type Invocation, invokeBundle } from "../../testing/bundles.ts";
import { kmsCallEvent, sqsBatch } from "../../testing/cloudtrail.ts";
import { streamEventOf, waitingAuditItems } from "../../testing/dynamodb-stream.ts";
import { httpApiEvent, IAM_ACCOUNT, iamApiEvent } from "../../testing/http-api-event.ts";
import { callTable } from "../../testing/iam/call-table.ts";
import { deliveriesFor } from "../../testing/iam/deliveries.ts";
import type { DeployedKey, NamedPolicy } from "../../testing/iam/deployed-shape.ts";
import type { Principal, RecordedCall } from "../../testing/iam/iam-contract.ts";
import {
  addKeyLike,
  addPrincipal,
  type LoopbackStage,
  startLoopbackStage,
} from "../../testing/iam/loopback-stage.ts";
import { scheduledEvent } from "../../testing/scheduled-event.ts";

// The IAM contract: the bundled functions run end to end against the dev stage's AWS on loopback, every
// AWS call passes the IAM proxy, which decides it with @cloud-copilot/iam-simulate against the policies
// of the synthesized templates (each function's role policies, the key policies, any resource policy),
// and answers a denied call as AWS would. Each function's environment is its template's.
//
// The call table of a run is written to node_modules/.cache/strongbox-iam/calls-dev.md; with
// IAM_CALL_TABLE=1 it is printed too. IAM_CONTRACT_MODE=record lets denied calls through (recorded
// still), to list every deny a flow would meet rather than the first one per request.

const MODE = process.env.IAM_CONTRACT_MODE === "record" ? "record" : "enforce";
const ROOT = resolve(import.meta.dirname, "..", "..");

let stage: LoopbackStage;
let bundles: Record<"api" | "rotation" | "audit", Bundle>;
let admin: string;
let bootstrapSecret: string;
let kek: DeployedKey;
let macKey: DeployedKey;
let previousKek: DeployedKey;
const canary = `CANARY-${randomBytes(12).toString("hex")}`;
const REFERENCED_VALUE = `REFERENCED-${randomBytes(8).toString("hex")}`;
let referencedArn: string;
const json = { "content-type": "application/json" };
const auth = (token: string) => ({ authorization: `Bearer ${token}` });
const adminJson = () => ({ ...json, ...auth(admin) });
/** A caller's role, bound by the admin, and a session of it as the IAM route delivers it. */
const BOUND_ROLE = `arn:aws:iam::${IAM_ACCOUNT}:role/services/reporting`;
const BOUND_SESSION = `arn:aws:sts::${IAM_ACCOUNT}:assumed-role/reporting/i-0abc`;
const reading = (token: string) => ({ ...auth(token), "x-audit-reason": "iam contract" });

/** What each flow step answered, by name. */
const answers = new Map<string, any>();
const runs: Invocation[] = [];
/** The calls of the end-to-end flows (the negative cases are recorded apart). */
let flowCalls: RecordedCall[] = [];

async function invoke(
  fn: "api" | "rotation" | "audit",
  env: Record<string, string>,
  steps: readonly (readonly [string, unknown])[],
): Promise<void> {
  try {
    const run = await invokeBundle(
      bundles[fn],
      env,
      steps.map(([, event]) => event),
    );
    runs.push(run);
    for (const [n, [name]] of steps.entries()) answers.set(name, run.results[n]);
  } catch (error) {
    // A handler that throws ends its process, as Lambda reports an invocation error: every step of it
    // is answered with the error, so the later flows still run and each assertion names its step.
    const failed = {
      processFailed: String((error as Error).message)
        .split("\n")[0]
        ?.slice(0, 400),
    };
    for (const [name] of steps) answers.set(name, failed);
  }
}

const api = (method: string, path: string, options: Parameters<typeof httpApiEvent>[2] = {}) =>
  httpApiEvent(method, path, options);
const legacyWrapped = () =>
  api("POST", "/v1/tokens", {
    headers: adminJson(),
    body: JSON.stringify({ role: "admin", tenants: ["*"], ttlSeconds: 3600, wrapTtlSeconds: 3600 }),
  });
const body = (name: string) => JSON.parse(answers.get(name)?.body ?? "null");

beforeAll(async () => {
  const [api_, rotation, audit] = await Promise.all([
    buildBundle("api"),
    buildBundle("rotation"),
    buildBundle("audit"),
  ]);
  bundles = { api: api_, rotation, audit };
  stage = await startLoopbackStage("dev", { mode: MODE });
  const { functions, secrets } = stage.shape;
  bootstrapSecret = stage.secretValue(secrets[0]?.arn ?? "");
  admin = bootstrapToken(bootstrapSecret)?.token ?? "";
  // The keys the functions are configured with, as their template names them.
  const keyNamed = (arn: string | undefined) => {
    const key = stage.contract.keys.find((k) => k.arn === arn);
    if (key === undefined) throw new Error(`the template names a key the stage does not create: ${arn}`);
    return key;
  };
  kek = keyNamed(functions.api.environment.KMS_KEY_ID);
  macKey = keyNamed(functions.api.environment.AUDIT_MAC_KEY_ID);
  // A KEK re-wrap needs DEKs under a KEK other than the active one; the stage holds one KEK, so the
  // flows start from a stage whose KEK was just replaced (see addKeyLike).
  previousKek = addKeyLike(stage, kek, "PreviousKek");
  const migrated = { KMS_KEY_ID_PREVIOUS: previousKek.arn };
  const env = (fn: "api" | "rotation" | "audit") => stage.functionEnv(fn, migrated);
  // A secret a team keeps in Secrets Manager under the stage's reference prefix (infra/config.ts).
  referencedArn = stage.secrets.putSecret(
    "strongbox-ref/dev/partner-api",
    REFERENCED_VALUE,
    "arn:aws:secretsmanager:us-east-1:111111111111:secret:strongbox-ref/dev/partner-api-Ab12Cd",
  );

  // Before the KEK moved: a tenant whose DEK is wrapped by the previous KEK.
  await invoke("api", { ...stage.functionEnv("api"), KMS_KEY_ID: previousKek.arn }, [
    [
      "legacy: create tenant",
      api("POST", "/v1/tenants", { headers: adminJson(), body: '{"tenantId":"legacy"}' }),
    ],
    [
      "legacy: write secret",
      api("PUT", "/v1/tenants/legacy/secrets/old-key", {
        headers: adminJson(),
        body: JSON.stringify({ value: canary }),
      }),
    ],
    // Live wraps whose payloads' data keys (under `_system`) the KEK re-wrap may not move: one is
    // unwrapped after it, the other stays live for the negative cases.
    ["legacy: issue wrapped", legacyWrapped()],
    ["legacy: issue wrapped, kept", legacyWrapped()],
  ]);

  await invoke("api", env("api"), [
    ["health", api("GET", "/health")],
    ["health report", api("GET", "/v1/health", { headers: auth(admin) })],
    ["create tenant", api("POST", "/v1/tenants", { headers: adminJson(), body: '{"tenantId":"acme"}' })],
    ["read tenant", api("GET", "/v1/tenants/acme", { headers: auth(admin) })],
    [
      "write secret",
      api("PUT", "/v1/tenants/acme/secrets/db-password", {
        headers: adminJson(),
        body: JSON.stringify({ value: canary }),
      }),
    ],
    ["read secret", api("GET", "/v1/tenants/acme/secrets/db-password", { headers: reading(admin) })],
    ["list secrets", api("GET", "/v1/tenants/acme/secrets", { headers: auth(admin) })],
    [
      "write generated secret",
      api("PUT", "/v1/tenants/acme/secrets/api-token", {
        headers: adminJson(),
        body: '{"value":"first-token-value"}',
      }),
    ],
    [
      "set rotation policy",
      api("PUT", "/v1/tenants/acme/secrets/api-token/rotation", {
        headers: adminJson(),
        body: JSON.stringify({ rotationPeriodDays: 30, generator: { kind: "token", length: 32 } }),
      }),
    ],
    [
      "rotate",
      api("POST", "/v1/tenants/acme/secrets/api-token/rotate", { headers: adminJson(), body: "{}" }),
    ],
    [
      "write pending",
      api("PUT", "/v1/tenants/acme/secrets/api-token", {
        headers: adminJson(),
        body: '{"value":"third-token-value","stage":"pending"}',
      }),
    ],
    [
      "promote",
      api("POST", "/v1/tenants/acme/secrets/api-token/promote", { headers: adminJson(), body: "{}" }),
    ],
    [
      "rollback",
      api("POST", "/v1/tenants/acme/secrets/api-token/rollback", {
        headers: adminJson(),
        body: '{"version":2}',
      }),
    ],
    [
      "write byok secret",
      api("PUT", "/v1/tenants/acme/secrets/partner-key", {
        headers: adminJson(),
        body: '{"value":"partner-value"}',
      }),
    ],
    [
      "byok policy",
      api("PUT", "/v1/tenants/acme/secrets/partner-key/rotation", {
        headers: adminJson(),
        body: '{"rotationPeriodDays":90}',
      }),
    ],
    [
      "byok rotate",
      api("POST", "/v1/tenants/acme/secrets/partner-key/rotate", { headers: adminJson(), body: "{}" }),
    ],
    ["due", api("GET", "/v1/tenants/acme/rotation/due", { headers: auth(admin), query: "withinDays=0" })],
    ["delete secret", api("DELETE", "/v1/tenants/acme/secrets/partner-key", { headers: auth(admin) })],
    // The version lifecycle: its purge is the API's one DeleteItem on a secret's items.
    [
      "undelete secret",
      api("POST", "/v1/tenants/acme/secrets/partner-key/undelete", { headers: auth(admin) }),
    ],
    ["list versions", api("GET", "/v1/tenants/acme/secrets/api-token/versions", { headers: auth(admin) })],
    [
      "destroy version",
      api("DELETE", "/v1/tenants/acme/secrets/api-token/versions/1", { headers: auth(admin) }),
    ],
    ["purge secret", api("POST", "/v1/tenants/acme/secrets/partner-key/purge", { headers: auth(admin) })],
    // A CredentialRef: DescribeSecret on the write, GetSecretValue (and DescribeSecret) on the read.
    [
      "write reference",
      api("PUT", "/v1/tenants/acme/secrets/partner-ref", {
        headers: adminJson(),
        body: JSON.stringify({ ref: `aws-sm://${referencedArn}` }),
      }),
    ],
    ["read reference", api("GET", "/v1/tenants/acme/secrets/partner-ref", { headers: reading(admin) })],
    // Tenant deletion: shred, sweep (DeleteItem in T#), certificate under META.
    [
      "create doomed tenant",
      api("POST", "/v1/tenants", { headers: adminJson(), body: '{"tenantId":"doomed"}' }),
    ],
    [
      "write doomed secret",
      api("PUT", "/v1/tenants/doomed/secrets/key", { headers: adminJson(), body: '{"value":"shredded"}' }),
    ],
    [
      "delete tenant",
      api("DELETE", "/v1/tenants/doomed", { headers: adminJson(), body: '{"confirm":"doomed"}' }),
    ],
    ["deletion certificate", api("GET", "/v1/tenants/doomed/deletion-certificate", { headers: auth(admin) })],
    ["rotate dek", api("POST", "/v1/tenants/acme/rotate-dek", { headers: adminJson(), body: "{}" })],
    ["dek status", api("GET", "/v1/tenants/acme/rotation", { headers: auth(admin) })],
    ["kek report", api("GET", "/v1/kek", { headers: auth(admin) })],
    ["kek rewrap", api("POST", "/v1/kek/rewrap", { headers: adminJson(), body: "{}" })],
    ["rotation run", api("POST", "/v1/rotation/run", { headers: adminJson(), body: "{}" })],
    [
      "issue token",
      api("POST", "/v1/tokens", {
        headers: adminJson(),
        body: JSON.stringify({ role: "runner", tenants: ["acme"], ttlSeconds: 3600 }),
      }),
    ],
  ]);
  const issued = body("issue token") ?? {};
  await invoke("api", env("api"), [
    [
      "runner reads",
      api("GET", "/v1/tenants/acme/secrets/db-password", { headers: reading(String(issued.token)) }),
    ],
    ["revoke token", api("DELETE", `/v1/tokens/${issued.id}`, { headers: auth(admin) })],
    [
      "revoked runner reads",
      api("GET", "/v1/tenants/acme/secrets/db-password", { headers: reading(String(issued.token)) }),
    ],
    [
      "bind role",
      api("POST", "/v1/bindings", {
        headers: adminJson(),
        body: JSON.stringify({ principalArn: BOUND_ROLE, role: "runner", tenants: ["acme"] }),
      }),
    ],
    [
      "iam caller reads",
      iamApiEvent("GET", "/iam/v1/tenants/acme/secrets/db-password", BOUND_SESSION, {
        headers: { "x-audit-reason": "iam contract" },
      }),
    ],
    ["list bindings", api("GET", "/v1/bindings", { headers: auth(admin) })],
  ]);
  const bound = body("bind role") ?? {};
  await invoke("api", env("api"), [
    ["delete binding", api("DELETE", `/v1/bindings/${bound.bindingId}`, { headers: auth(admin) })],
    [
      "unbound iam caller reads",
      iamApiEvent("GET", "/iam/v1/tenants/acme/secrets/db-password", BOUND_SESSION, {
        headers: { "x-audit-reason": "iam contract" },
      }),
    ],
  ]);

  // Issue 12's routes through the bundled API: the kill switch (SEAL#), the access review (TOKENS),
  // response wrapping (WRAP#, a data key per payload), and break-glass (BG#, its event on the bus).
  await invoke("api", env("api"), [
    [
      "issue approver",
      api("POST", "/v1/tokens", {
        headers: adminJson(),
        body: JSON.stringify({ role: "admin", tenants: ["*"], ttlSeconds: 3600 }),
      }),
    ],
    [
      "issue operator wrapped",
      api("POST", "/v1/tokens", {
        headers: adminJson(),
        body: JSON.stringify({ role: "operator", tenants: ["acme"], ttlSeconds: 3600, wrapTtlSeconds: 300 }),
      }),
    ],
    ["list tokens", api("GET", "/v1/tokens", { headers: auth(admin) })],
    ["own token", api("GET", "/v1/tokens/self", { headers: auth(admin) })],
    [
      "wrapped read",
      api("GET", "/v1/tenants/acme/secrets/db-password", {
        headers: reading(admin),
        query: "wrapTtlSeconds=60",
      }),
    ],
    ["seal", api("POST", "/v1/tenants/acme/seal", { headers: adminJson(), body: '{"reason":"contract"}' })],
    ["sealed read", api("GET", "/v1/tenants/acme/secrets/db-password", { headers: reading(admin) })],
    [
      "unseal",
      api("POST", "/v1/tenants/acme/unseal", { headers: adminJson(), body: '{"reason":"contract"}' }),
    ],
  ]);
  const approver = String(body("issue approver")?.token);
  const wrappedOperator = String(body("issue operator wrapped")?.wrap?.token);
  const wrappedRead = String(body("wrapped read")?.wrap?.token);
  await invoke("api", env("api"), [
    [
      "unwrap operator",
      api("POST", "/v1/unwrap", { headers: json, body: JSON.stringify({ token: wrappedOperator }) }),
    ],
    [
      "lookup read",
      api("POST", "/v1/unwrap/lookup", { headers: json, body: JSON.stringify({ token: wrappedRead }) }),
    ],
    [
      "unwrap read",
      api("POST", "/v1/unwrap", { headers: json, body: JSON.stringify({ token: wrappedRead }) }),
    ],
  ]);
  const operatorToken = String(body("unwrap operator")?.data?.token);
  await invoke("api", env("api"), [
    [
      "ask break-glass",
      api("POST", "/v1/tenants/acme/break-glass", {
        headers: { ...json, ...auth(operatorToken) },
        body: '{"reason":"contract","durationMinutes":5}',
      }),
    ],
  ]);
  const breakGlassId = String(body("ask break-glass")?.id);
  await invoke("api", env("api"), [
    [
      "approve break-glass",
      api("POST", `/v1/tenants/acme/break-glass/${breakGlassId}/approve`, { headers: auth(approver) }),
    ],
    [
      "activate break-glass",
      api("POST", `/v1/tenants/acme/break-glass/${breakGlassId}/activate`, { headers: auth(operatorToken) }),
    ],
  ]);
  const credential = String(body("activate break-glass")?.credential);
  await invoke("api", env("api"), [
    ["break-glass reads audit", api("GET", "/v1/tenants/acme/audit", { headers: auth(credential) })],
  ]);

  // A DEK rotation the on-demand run has not swept, so the rotation function's own sweep unwraps DEKs
  // and re-seals values: its Decrypt and GenerateDataKey are then recorded calls too.
  // The first rotation was just now: stand in for DEK_ROTATE_MIN_INTERVAL_SECONDS passing.
  await stage.table.update(
    { pk: "T#acme", sk: "TENANT" },
    { update: "SET dekRotatedAt = :at", values: { ":at": new Date(Date.now() - DAY_MS).toISOString() } },
  );
  await invoke("api", env("api"), [
    ["rotate dek again", api("POST", "/v1/tenants/acme/rotate-dek", { headers: adminJson(), body: "{}" })],
  ]);
  // What the API handed to the rotation function (an asynchronous invoke, or an event a rule routes to
  // it), then the scheduled run: the DEK sweep, due rotations, and whatever re-wrap is unfinished.
  const taken = new Set<unknown>();
  const handed = deliveriesFor(stage, "rotation", taken).map(
    (event, n) => [`hand-off ${n + 1}`, event] as const,
  );
  await invoke("rotation", env("rotation"), [
    ...handed,
    [
      "scheduled run",
      scheduledEvent("arn:aws:events:us-east-1:111111111111:rule/strongbox-dev-rotation-Schedule"),
    ],
  ]);

  // CloudTrail delivers the service's own KMS calls on the watched keys (and one by someone else).
  const kmsOnWatchedKeys = stage.proxy.calls.filter(
    (c) =>
      c.allowed &&
      c.service === "kms" &&
      [kek.arn, macKey.arn].includes(c.resource) &&
      c.principal !== "audit",
  );
  const trail = kmsOnWatchedKeys.slice(0, 8).map((call) => {
    const fn = stage.shape.functions[call.principal as "api" | "rotation"];
    const tenant = call.context["kms:EncryptionContext:strongbox:tenant"];
    return JSON.stringify(
      kmsCallEvent({
        eventName: call.operation,
        keyArn: call.resource,
        caller: { role: fn.roleArn, session: fn.functionName },
        ...(typeof tenant === "string" ? { tenant } : {}),
      }),
    );
  });
  trail.push(
    JSON.stringify(
      kmsCallEvent({ eventName: "Decrypt", keyArn: kek.arn, caller: { user: "mallory" }, tenant: "acme" }),
    ),
  );
  await invoke("audit", env("audit"), [["ingest", sqsBatch(...trail)]]);
  // The table's stream, as it would deliver every waiting audit record so far to the sequencer
  // (dynalite has none): the audit function chains them as its own role.
  waitingBefore = await waitingAuditItems(stage.table);
  await invoke("audit", env("audit"), [["sequence", streamEventOf(waitingBefore)]]);
  waitingAfter = await waitingAuditItems(stage.table);

  await invoke("api", env("api"), [
    ["audit read", api("GET", "/v1/tenants/acme/audit", { headers: auth(admin), query: "limit=50" })],
    ["audit export", api("GET", "/v1/tenants/acme/audit/export", { headers: auth(admin) })],
    ["audit verify", api("GET", "/v1/tenants/acme/audit/verify", { headers: auth(admin) })],
    ["audit head", api("GET", "/v1/tenants/acme/audit/head", { headers: auth(admin) })],
    ["system audit", api("GET", "/v1/audit", { headers: auth(admin), query: "limit=100" })],
    ["system export", api("GET", "/v1/audit/export", { headers: auth(admin) })],
    ["system verify", api("GET", "/v1/audit/verify", { headers: auth(admin) })],
    ["legacy read", api("GET", "/v1/tenants/legacy/secrets/old-key", { headers: reading(admin) })],
    ["kek report after", api("GET", "/v1/kek", { headers: auth(admin) })],
    [
      "legacy unwrap",
      api("POST", "/v1/unwrap", {
        headers: json,
        body: JSON.stringify({ token: String(body("legacy: issue wrapped")?.wrap?.token) }),
      }),
    ],
  ]);
  flowCalls = [...stage.proxy.calls];

  const table = callTable(flowCalls, stage.contract);
  const dir = join(ROOT, "node_modules", ".cache", "strongbox-iam");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "calls-dev.md"), `${table}\n`);
  if (process.env.IAM_CONTRACT_DEBUG === "1") {
    for (const [name, answer] of answers) console.log(name, JSON.stringify(answer).slice(0, 600));
  }
  if (process.env.IAM_CALL_TABLE === "1") console.log(`IAM contract, dev stage, ${MODE} mode:\n${table}`);
}, 120_000);

afterAll(async () => {
  await stage?.close();
});

let waitingBefore: Record<string, unknown>[] = [];
let waitingAfter: Record<string, unknown>[] = [];
const status = (name: string) => answers.get(name)?.statusCode;
const denies = (calls: readonly RecordedCall[]) =>
  calls.filter((c) => !c.allowed).map((c) => `${c.principal} ${c.action} on ${c.resource}: ${c.reason}`);

describe("the end-to-end flows through the bundled functions", () => {
  it("each function called AWS as its own role, with the environment of its template", () => {
    expect(new Set(flowCalls.map((c) => c.principal))).toEqual(new Set(["api", "rotation", "audit"]));
    expect(flowCalls.some((c) => c.principal === "api" && c.action === "secretsmanager:GetSecretValue")).toBe(
      true,
    );
  });

  it("make no call the stage's policies deny", () => {
    expect(denies(flowCalls)).toEqual([]);
  });

  it("cold start, tenant creation, secret writes, reads, lists and deletes answer as they do locally", () => {
    expect(status("legacy: create tenant")).toBe(201);
    expect(status("health")).toBe(200);
    expect(status("health report")).toBe(200);
    expect(status("create tenant")).toBe(201);
    expect(status("read tenant")).toBe(200);
    expect(status("write secret")).toBeLessThan(300);
    expect(body("read secret")).toMatchObject({ name: "db-password", value: canary });
    expect(status("list secrets")).toBe(200);
    expect(status("delete secret")).toBe(204);
  });

  it("rotation policies, rotate, rollback and promote work; a BYOK rotation is due", () => {
    for (const step of [
      "set rotation policy",
      "rotate",
      "write pending",
      "promote",
      "rollback",
      "byok policy",
      "byok rotate",
    ]) {
      expect([step, status(step)]).toEqual([step, 200]);
    }
    expect(status("due")).toBe(200);
  });

  it("versions are listed and destroyed, a deleted secret undeleted and purged, with DeleteItem allowed", () => {
    expect(status("undelete secret")).toBe(200);
    expect(status("list versions")).toBe(200);
    expect(status("destroy version")).toBe(204);
    expect(status("purge secret")).toBe(204);
    expect(flowCalls.some((c) => c.principal === "api" && c.action === "dynamodb:DeleteItem")).toBe(true);
  });

  it("a CredentialRef under the configured prefix is written and resolved through Secrets Manager", () => {
    expect(status("write reference")).toBe(200);
    expect(body("read reference")).toMatchObject({
      value: REFERENCED_VALUE,
      reference: `aws-sm://${referencedArn}`,
    });
    for (const action of ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]) {
      expect(flowCalls.some((c) => c.principal === "api" && c.action === action)).toBe(true);
    }
  });

  it("a tenant is deleted by crypto-shredding and its certificate verifies", () => {
    expect(status("create doomed tenant")).toBe(201);
    expect(status("write doomed secret")).toBe(200);
    expect(status("delete tenant")).toBe(200);
    expect(body("deletion certificate")).toMatchObject({
      verified: true,
      certificate: { tenantId: "doomed" },
    });
  });

  it("DEK rotation and its status, the KEK report, the re-wrap and the on-demand rotation run answer", () => {
    expect(status("rotate dek")).toBeLessThan(300);
    expect(status("dek status")).toBe(200);
    expect(status("kek report")).toBe(200);
    expect(status("kek rewrap")).toBe(202);
    expect(status("rotation run")).toBe(200);
  });

  it("tokens are issued, used and revoked", () => {
    expect(status("issue token")).toBe(201);
    expect(status("runner reads")).toBe(200);
    expect(status("revoke token")).toBe(204);
    expect(status("revoked runner reads")).toBe(401);
  });

  it("issue 12's routes answer through the bundled API: seal, review, wrapping, break-glass", () => {
    expect(status("issue approver")).toBe(201);
    expect(status("issue operator wrapped")).toBe(201);
    expect(status("list tokens")).toBe(200);
    expect(status("own token")).toBe(200);
    expect(status("wrapped read")).toBe(200);
    expect(status("seal")).toBe(200);
    expect(status("sealed read")).toBe(423);
    expect(status("unseal")).toBe(200);
    expect(status("unwrap operator")).toBe(200);
    expect(status("lookup read")).toBe(200);
    expect(body("unwrap read")?.data).toMatchObject({ name: "db-password", value: canary });
    expect(status("ask break-glass")).toBe(201);
    expect(status("approve break-glass")).toBe(200);
    expect(status("activate break-glass")).toBe(201);
    expect(status("break-glass reads audit")).toBe(200);
  });

  it("bindings are created, listed and deleted; a bound IAM caller reads until its binding is deleted", () => {
    expect(status("bind role")).toBe(201);
    expect(body("iam caller reads")).toMatchObject({ name: "db-password", value: canary });
    expect(body("list bindings")?.bindings).toEqual([expect.objectContaining({ principalArn: BOUND_ROLE })]);
    expect(status("delete binding")).toBe(204);
    expect(status("unbound iam caller reads")).toBe(403);
  });

  it("the scheduled run re-seals the tenant's secrets and fails nowhere", () => {
    const summary = answers.get("scheduled run");
    expect(summary?.outOfTime).toBe(false);
    const sweep = summary?.sweeps?.find((s: { tenantId: string }) => s.tenantId === "acme");
    expect(sweep?.stoppedBecause).not.toBe("failed");
    expect(sweep?.resealed).toBeGreaterThanOrEqual(1);
    expect(status("rotate dek again")).toBe(200);
    expect(summary?.due).toMatchObject({ failed: 0, scanComplete: true });
    expect(summary?.due?.code).toBeUndefined();
  });

  it("the re-wrap leaves no DEK under the previous KEK, and the legacy tenant's secret still reads", () => {
    expect(status("kek report after")).toBe(200);
    const keks = (body("kek report after")?.keks ?? []) as { kekId: string; dataKeys: number }[];
    expect(keks.find((k) => k.kekId === kek.arn)?.dataKeys).toBeGreaterThan(0);
    expect(keks.find((k) => k.kekId === previousKek.arn)?.dataKeys ?? 0).toBe(0);
    expect(body("legacy read")).toMatchObject({ value: canary });
  });

  it("the re-wrap leaves a live wrap's `_system` payload key where it is and waits: the old KEK stays, the wrap opens", async () => {
    expect(status("legacy: issue wrapped")).toBe(201);
    const kept = String(body("legacy: issue wrapped, kept")?.wrap?.id ?? "");
    const item = await stage.table.get({ pk: `WRAP#${kept}`, sk: "WRAP" });
    expect(item?.kekId).toBe(previousKek.arn);
    const report = body("kek report after");
    expect(report?.rewrap?.phase).not.toBe("done");
    expect(report?.rewrap?.rekey).toMatchObject({ step: "items", kind: "wraps" });
    expect(report?.keks?.find((k: { kekId: string }) => k.kekId === previousKek.arn)).toMatchObject({
      mayBeRemoved: false,
    });
    expect(body("legacy unwrap")?.data?.token).toMatch(/^sbx_/);
  });

  it("the rotation role makes no KMS call with a `_system` encryption context in the flows", () => {
    const system = flowCalls.filter(
      (c) => c.principal === "rotation" && c.context["kms:EncryptionContext:strongbox:tenant"] === "_system",
    );
    expect(system).toEqual([]);
    // It did re-encrypt tenants' DEKs in the same run.
    expect(flowCalls.some((c) => c.principal === "rotation" && c.action === "kms:ReEncryptFrom")).toBe(true);
  });

  it("the audit function records CloudTrail's KMS events, flagging the foreign caller", () => {
    expect(answers.get("ingest")).toEqual({ batchItemFailures: [] });
    type Event = { action: string; actor: string; severity?: string };
    const tenant = (body("audit read")?.events ?? []) as Event[];
    expect(
      tenant.some(
        (e) => e.action === "kms.call" && e.actor.endsWith(":user/mallory") && e.severity === "high",
      ),
    ).toBe(true);
    const system = (body("system audit")?.events ?? []) as Event[];
    expect(system.some((e) => e.action === "kms.call" && e.actor === stage.shape.functions.api.roleArn)).toBe(
      true,
    );
  });

  it("the audit function, fed the stream, chains every waiting record and clears them from the queue", () => {
    expect(waitingBefore.length).toBeGreaterThan(10);
    expect(answers.get("sequence")).toEqual({ batchItemFailures: [] });
    expect(waitingAfter).toEqual([]);
  });

  it("the audit function anchors each chain's head in S3, conditionally, and verify checks against it", () => {
    const bucket = stage.shape.functions.audit.environment.AUDIT_ANCHOR_BUCKET ?? "";
    expect(bucket).toBe(stage.shape.functions.api.environment.AUDIT_ANCHOR_BUCKET);
    const s3Calls = flowCalls.filter((c) => c.service === "s3");
    const puts = s3Calls.filter((c) => c.action === "s3:PutObject");
    expect(puts.length).toBeGreaterThanOrEqual(2);
    expect(puts.every((c) => c.principal === "audit" && c.allowed)).toBe(true);
    expect(puts.every((c) => c.context["s3:if-none-match"] === "*")).toBe(true);
    expect(puts.map((c) => c.resource)).toContainEqual(
      expect.stringMatching(new RegExp(`^arn:aws:s3:::${bucket}/anchors/acme/\\d{15}\\.json$`)),
    );
    // Verify reads versions, so that an anchor hidden or replaced in S3 is still found.
    for (const action of ["s3:ListBucketVersions", "s3:GetObjectVersion"]) {
      expect(s3Calls.some((c) => c.principal === "api" && c.action === action && c.allowed)).toBe(true);
    }
    expect(s3Calls.filter((c) => c.principal === "api" && c.action === "s3:ListBucketVersions")).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ context: expect.objectContaining({ "s3:prefix": "anchors/acme/" }) }),
      ]),
    );
    expect(s3Calls.filter((c) => c.principal === "rotation")).toEqual([]);
    const verified = body("audit verify");
    expect(verified?.anchor?.sequence).toBeGreaterThan(0);
    expect(verified?.anchor?.sequence).toBeLessThanOrEqual(verified?.records);
    expect([...stage.s3.objects(bucket).keys()].some((key) => key.startsWith("anchors/acme/"))).toBe(true);
  });

  it("audit read, export and verify work on the tenant and the system scope", () => {
    expect(status("audit read")).toBe(200);
    expect(status("audit export")).toBe(200);
    expect(body("audit verify")).toMatchObject({ intact: true });
    expect(status("audit head")).toBe(200);
    expect(status("system export")).toBe(200);
    expect(body("system verify")).toMatchObject({ intact: true });
  });

  it("logged neither a secret value nor the bootstrap secret", () => {
    for (const run of runs) {
      expect(run.logs).not.toContain(canary);
      expect(run.logs).not.toContain(bootstrapSecret);
    }
  });
});

describe("calls that the stage's policies must deny, made through the same proxy", () => {
  const kmsAs = (label: string) =>
    new KMSClient({
      endpoint: stage.proxy.endpoint,
      region: "us-east-1",
      credentials: stage.credentials(label),
      maxAttempts: 1,
    });
  const dynamoAs = (label: string) =>
    new DynamoDBClient({
      endpoint: stage.proxy.endpoint,
      region: "us-east-1",
      credentials: stage.credentials(label),
      maxAttempts: 1,
    });
  /** A wrapped DEK of acme, as anyone who can read the table gets it. */
  const acmeDek = async () => {
    const tenant = await stage.table.get({ pk: "T#acme", sk: "TENANT" });
    const [wrapped] = (tenant?.dataKeys ?? []) as {
      version: number;
      kekId: string;
      ciphertext: Uint8Array;
    }[];
    if (wrapped === undefined) throw new Error("acme has no DEK");
    return {
      blob: new Uint8Array(wrapped.ciphertext),
      context: { "strongbox:tenant": "acme", "strongbox:dek-version": String(wrapped.version) },
      kekId: wrapped.kekId,
    };
  };
  const s3As = (label: string) =>
    new S3Client({
      endpoint: stage.proxy.endpoint,
      forcePathStyle: true,
      region: "us-east-1",
      credentials: stage.credentials(label),
      maxAttempts: 1,
    });
  const anchorBucket = () => stage.shape.functions.audit.environment.AUDIT_ANCHOR_BUCKET ?? "";
  /** The key of an anchor the flows wrote. */
  const anchorKey = () => {
    const key = [...stage.s3.objects(anchorBucket()).keys()].find((k) => k.startsWith("anchors/acme/"));
    if (key === undefined) throw new Error("the flows anchored no acme chain");
    return key;
  };
  const lastCall = (label: string, action: string) =>
    [...stage.proxy.calls].reverse().find((c) => c.principal === label && c.action === action);
  const refused = async (label: string, action: string, send: () => Promise<unknown>) => {
    const error = await send().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect([action, lastCall(label, action)?.allowed]).toEqual([action, false]);
    expect((error as Error | undefined)?.name).toBe("AccessDeniedException");
  };

  /** As `refused`, for S3, whose SDK names the error `AccessDenied`; the anchor is still there after. */
  const s3Refused = async (label: string, action: string, send: () => Promise<unknown>) => {
    const before = stage.s3.objects(anchorBucket()).get(anchorKey());
    const error = await send().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect([action, lastCall(label, action)?.allowed]).toEqual([action, false]);
    expect((error as Error | undefined)?.name).toBe("AccessDenied");
    expect(stage.s3.objects(anchorBucket()).get(anchorKey())).toBe(before);
  };

  let poweruser: Principal;
  beforeAll(() => {
    const everything: NamedPolicy = {
      name: "PowerUserAccess-like",
      policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "kms:*", Resource: "*" }] },
    };
    poweruser = addPrincipal(stage, {
      label: "poweruser",
      arn: `arn:aws:iam::${stage.shape.stage.account}:user/poweruser`,
      identityPolicies: [everything],
    });
    stage.proxy.mode = "enforce";
  });

  it("the audit role decrypting a DEK with the KEK", async () => {
    const dek = await acmeDek();
    await refused("audit", "kms:Decrypt", () =>
      kmsAs("audit").send(
        new DecryptCommand({ KeyId: dek.kekId, CiphertextBlob: dek.blob, EncryptionContext: dek.context }),
      ),
    );
  });

  it("the API role calling ReEncrypt (ReEncryptFrom, ReEncryptTo)", async () => {
    const dek = await acmeDek();
    await refused("api", "kms:ReEncryptFrom", () =>
      kmsAs("api").send(
        new ReEncryptCommand({
          CiphertextBlob: dek.blob,
          SourceKeyId: dek.kekId,
          SourceEncryptionContext: dek.context,
          DestinationKeyId: kek.arn,
          DestinationEncryptionContext: dek.context,
        }),
      ),
    );
    const to = [...stage.proxy.calls]
      .reverse()
      .find((c) => c.principal === "api" && c.action === "kms:ReEncryptTo");
    expect(to?.allowed).toBe(false);
  });

  it("an account principal outside the service roles, with kms:* on *, decrypting with the KEK", async () => {
    expect(poweruser.roleArn).toBeUndefined();
    const dek = await acmeDek();
    await refused("poweruser", "kms:Decrypt", () =>
      kmsAs("poweruser").send(
        new DecryptCommand({ KeyId: dek.kekId, CiphertextBlob: dek.blob, EncryptionContext: dek.context }),
      ),
    );
  });

  it("the same principal making an audit chain key with the MAC key", async () => {
    await refused("poweruser", "kms:GenerateMac", () =>
      kmsAs("poweruser").send(
        new GenerateMacCommand({
          KeyId: macKey.arn,
          MacAlgorithm: "HMAC_SHA_256",
          Message: new TextEncoder().encode("strongbox/audit-chain/v1\u00002026-01-01"),
        }),
      ),
    );
  });

  const tokenItem = {
    pk: { S: "TOKEN#forged" },
    sk: { S: "TOKEN" },
    role: { S: "admin" },
    tenants: { L: [{ S: "*" }] },
    secretHash: { S: "0".repeat(64) },
  };
  it("the audit role writing a TOKEN# item", async () => {
    await refused("audit", "dynamodb:PutItem", () =>
      dynamoAs("audit").send(new PutItemCommand({ TableName: stage.table.name, Item: tokenItem })),
    );
  });

  describe("the stage's key administrator, even with AdministratorAccess", () => {
    beforeAll(() => {
      addPrincipal(stage, {
        label: "key-admin",
        arn: `arn:aws:iam::${stage.shape.stage.account}:role/strongbox-dev-key-admin`,
        identityPolicies: [
          {
            name: "AdministratorAccess-like",
            policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] },
          },
        ],
      });
    });

    it("decrypting a DEK with the KEK", async () => {
      const dek = await acmeDek();
      await refused("key-admin", "kms:Decrypt", () =>
        kmsAs("key-admin").send(
          new DecryptCommand({ KeyId: dek.kekId, CiphertextBlob: dek.blob, EncryptionContext: dek.context }),
        ),
      );
    });

    it("making an audit chain key with the MAC key", async () => {
      await refused("key-admin", "kms:GenerateMac", () =>
        kmsAs("key-admin").send(
          new GenerateMacCommand({
            KeyId: macKey.arn,
            MacAlgorithm: "HMAC_SHA_256",
            Message: new TextEncoder().encode("strongbox/audit-chain/v1\u00002026-01-01"),
          }),
        ),
      );
    });

    it("deleting an anchor, or putting one", async () => {
      await s3Refused("key-admin", "s3:DeleteObject", () =>
        s3As("key-admin").send(new DeleteObjectCommand({ Bucket: anchorBucket(), Key: anchorKey() })),
      );
      expect(lastCall("key-admin", "s3:DeleteObject")?.reason).toMatch(
        /explicit deny in a resource-based policy/,
      );
      await s3Refused("key-admin", "s3:PutObject", () =>
        s3As("key-admin").send(
          new PutObjectCommand({ Bucket: anchorBucket(), Key: anchorKey(), Body: "{}", IfNoneMatch: "*" }),
        ),
      );
    });

    it("expiring the anchors by lifecycle, deleting the bucket policy, or suspending versioning", async () => {
      const Bucket = anchorBucket();
      await s3Refused("key-admin", "s3:PutLifecycleConfiguration", () =>
        s3As("key-admin").send(
          new PutBucketLifecycleConfigurationCommand({
            Bucket,
            LifecycleConfiguration: {
              Rules: [{ ID: "hide", Status: "Enabled", Filter: { Prefix: "" }, Expiration: { Days: 1 } }],
            },
          }),
        ),
      );
      expect(lastCall("key-admin", "s3:PutLifecycleConfiguration")?.reason).toMatch(
        /explicit deny in a resource-based policy/,
      );
      await s3Refused("key-admin", "s3:DeleteBucketPolicy", () =>
        s3As("key-admin").send(new DeleteBucketPolicyCommand({ Bucket })),
      );
      await s3Refused("key-admin", "s3:PutBucketVersioning", () =>
        s3As("key-admin").send(
          new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: "Suspended" } }),
        ),
      );
    });

    it("reading the bootstrap secret", async () => {
      const [secret] = stage.shape.secrets;
      await refused("key-admin", "secretsmanager:GetSecretValue", () =>
        new SecretsManagerClient({
          endpoint: stage.proxy.endpoint,
          region: "us-east-1",
          credentials: stage.credentials("key-admin"),
          maxAttempts: 1,
        }).send(new GetSecretValueCommand({ SecretId: secret?.arn })),
      );
    });

    it("putting a re-wrap request on the stage's bus, as the API would", async () => {
      await refused("key-admin", "events:PutEvents", () =>
        new EventBridgeClient({
          endpoint: stage.proxy.endpoint,
          region: "us-east-1",
          credentials: stage.credentials("key-admin"),
          maxAttempts: 1,
        }).send(
          new PutEventsCommand({
            Entries: [
              {
                EventBusName: "strongbox-dev",
                Source: "strongbox.api",
                DetailType: "KEK Rewrap Requested",
                Detail: JSON.stringify({ stage: "dev", requestId: "forged" }),
              },
            ],
          }),
        ),
      );
    });
  });

  describe("the anchor bucket", () => {
    it("the audit role deleting an anchor", async () => {
      await s3Refused("audit", "s3:DeleteObject", () =>
        s3As("audit").send(new DeleteObjectCommand({ Bucket: anchorBucket(), Key: anchorKey() })),
      );
    });

    it("the audit role shortening an anchor's retention", async () => {
      await s3Refused("audit", "s3:PutObjectRetention", () =>
        s3As("audit").send(
          new PutObjectRetentionCommand({
            Bucket: anchorBucket(),
            Key: anchorKey(),
            Retention: { Mode: "GOVERNANCE", RetainUntilDate: new Date(Date.now() + 60_000) },
          }),
        ),
      );
    });

    it("the audit role overwriting an anchor with an unconditional put", async () => {
      await s3Refused("audit", "s3:PutObject", () =>
        s3As("audit").send(new PutObjectCommand({ Bucket: anchorBucket(), Key: anchorKey(), Body: "{}" })),
      );
      expect(lastCall("audit", "s3:PutObject")?.reason).toMatch(/explicit deny in a resource-based policy/);
    });

    it("the API role putting an anchor, even conditionally", async () => {
      await s3Refused("api", "s3:PutObject", () =>
        s3As("api").send(
          new PutObjectCommand({
            Bucket: anchorBucket(),
            Key: "anchors/acme/000000000000000.json",
            Body: "{}",
            IfNoneMatch: "*",
          }),
        ),
      );
    });
  });

  describe("a live wrap's payload, as the rotation role (which may read WRAP# items) meets it", () => {
    /** The kept wrap's payload data key, as the rotation role reads it from the table. */
    const keptWrap = async () => {
      const id = String(body("legacy: issue wrapped, kept")?.wrap?.id ?? "");
      const item = await stage.table.get({ pk: `WRAP#${id}`, sk: "WRAP" });
      if (!(item?.wrappedKey instanceof Uint8Array)) throw new Error("the kept wrap has no payload");
      return {
        blob: new Uint8Array(item.wrappedKey),
        kekId: String(item.kekId),
        context: { "strongbox:tenant": "_system", "strongbox:dek-version": "0" },
      };
    };

    it("the rotation role cannot Decrypt a _system data key", async () => {
      const key = await keptWrap();
      await refused("rotation", "kms:Decrypt", () =>
        kmsAs("rotation").send(
          new DecryptCommand({ KeyId: key.kekId, CiphertextBlob: key.blob, EncryptionContext: key.context }),
        ),
      );
      const call = lastCall("rotation", "kms:Decrypt");
      expect(call?.reason).toMatch(/explicit deny/);
      // The KEK's policy refuses it on its own, with the role's identity deny taken away.
      const withoutIdentityDeny = stage.contract.withIdentityPolicies((p) =>
        p.identityPolicies.map((named) => ({
          ...named,
          policy: { ...named.policy, Statement: named.policy.Statement.filter((st) => st.Effect !== "Deny") },
        })),
      );
      const [again] = await withoutIdentityDeny.reevaluate(call === undefined ? [] : [call]);
      expect(again?.allowed).toBe(false);
      expect(again?.reason).toMatch(/explicit deny in a resource-based policy/);
    });

    it("the rotation role cannot ReEncrypt a _system data key, not even into a tenant's context", async () => {
      const key = await keptWrap();
      for (const destination of ["_system", "acme"]) {
        await refused("rotation", "kms:ReEncryptFrom", () =>
          kmsAs("rotation").send(
            new ReEncryptCommand({
              CiphertextBlob: key.blob,
              SourceKeyId: key.kekId,
              SourceEncryptionContext: key.context,
              DestinationKeyId: kek.arn,
              DestinationEncryptionContext: { "strongbox:tenant": destination, "strongbox:dek-version": "0" },
            }),
          ),
        );
      }
    });

    it("the rotation role cannot GenerateDataKey under the _system context", async () => {
      await refused("rotation", "kms:GenerateDataKey", () =>
        kmsAs("rotation").send(
          new GenerateDataKeyCommand({
            KeyId: kek.arn,
            KeySpec: "AES_256",
            EncryptionContext: { "strongbox:tenant": "_system", "strongbox:dek-version": "0" },
          }),
        ),
      );
    });

    it("the rotation role cannot write a WRAP# item", async () => {
      await refused("rotation", "dynamodb:PutItem", () =>
        dynamoAs("rotation").send(
          new PutItemCommand({
            TableName: stage.table.name,
            Item: { pk: { S: "WRAP#forged" }, sk: { S: "WRAP" } },
          }),
        ),
      );
    });
  });

  it("the rotation role writing a TOKEN# item", async () => {
    await refused("rotation", "dynamodb:PutItem", () =>
      dynamoAs("rotation").send(new PutItemCommand({ TableName: stage.table.name, Item: tokenItem })),
    );
  });
});

/** The principal's identity policies without `action` anywhere; throws if no statement granted it. */
function withoutGrant(policies: readonly NamedPolicy[], action: string): NamedPolicy[] {
  let removed = 0;
  const result = policies.map((p) => ({
    ...p,
    policy: {
      ...p.policy,
      Statement: p.policy.Statement.flatMap((s) => {
        if (s.Effect !== "Allow") return [s];
        const actions = [s.Action].flat() as string[];
        const kept = actions.filter((a) => a.toLowerCase() !== action.toLowerCase());
        removed += actions.length - kept.length;
        return kept.length === 0 ? [] : [{ ...s, Action: kept }];
      }),
    },
  }));
  if (removed === 0)
    throw new Error(`no statement grants ${action} by name; the teeth test needs a new grant to cut`);
  return result;
}

describe("the contract has teeth", () => {
  const cut = async (label: string, action: string) => {
    const contract = stage.contract.withIdentityPolicies((p) =>
      p.label === label ? withoutGrant(p.identityPolicies, action) : p.identityPolicies,
    );
    const needed = flowCalls.filter((c) => c.principal === label && c.action === action);
    return { needed, after: await contract.reevaluate(needed) };
  };

  it("without the API role's dynamodb:PutItem, every recorded PutItem of the API is denied, naming the call", async () => {
    const { needed, after } = await cut("api", "dynamodb:PutItem");
    expect(needed.length).toBeGreaterThan(0);
    expect(needed.every((c) => c.allowed)).toBe(true);
    expect(after.every((c) => !c.allowed)).toBe(true);
    expect(denies(after)[0]).toMatch(
      /^api dynamodb:PutItem on arn:aws:dynamodb:us-east-1:111111111111:table\/strongbox-dev: because no identity-based policy allows the dynamodb:PutItem action$/,
    );
  });

  it("without the audit role's s3:PutObject, every recorded anchor put is denied", async () => {
    const { needed, after } = await cut("audit", "s3:PutObject");
    expect(needed.length).toBeGreaterThan(0);
    expect(needed.every((c) => c.allowed)).toBe(true);
    expect(after.map((c) => c.allowed)).toEqual(needed.map(() => false));
  });

  it("without the rotation role's kms:ReEncryptTo, the re-wrap's recorded ReEncryptTo calls are denied", async () => {
    const { needed, after } = await cut("rotation", "kms:ReEncryptTo");
    expect(needed.length).toBeGreaterThan(0);
    expect(after.map((c) => c.allowed)).toEqual(needed.map(() => false));
  });
});

describe("a denied AWS call, as a request meets it", () => {
  // A stage of its own, so the calls recorded above stay the flows'. One grant is cut at a time between
  // processes; the first process runs with every grant, so the bootstrap token exists.
  let denied: LoopbackStage;
  let runsHere: Invocation[];
  const create = (tenantId: string) =>
    api("POST", "/v1/tenants", { headers: adminJson(), body: JSON.stringify({ tenantId }) });
  const runWithout = async (action: string | undefined, events: unknown[]) => {
    const full = denied.shape.functions.api.identityPolicies;
    const principal = denied.contract.principal("api");
    denied.contract.addPrincipal({
      ...principal,
      identityPolicies: action === undefined ? full : withoutGrant(full, action),
    });
    const run = await invokeBundle(bundles.api, denied.functionEnv("api"), events);
    runsHere.push(run);
    return run;
  };
  /** Every item the tenant's creation writes: its partition and its directory entry. */
  const tenantWrites = async (tenantId: string) => [
    ...(
      await denied.table.query({
        keyCondition: "pk = :pk",
        values: { ":pk": `T#${tenantId}` },
        consistent: true,
      })
    ).items,
    ...[await denied.table.get({ pk: "TENANTS", sk: tenantId })].filter((item) => item !== undefined),
  ];

  let store: Invocation;
  let keyring: Invocation;
  let retried: Invocation;
  const leftBehind: Record<string, unknown[]> = {};
  beforeAll(async () => {
    denied = await startLoopbackStage("dev", { mode: "enforce" });
    admin = bootstrapToken(denied.secretValue(denied.shape.secrets[0]?.arn ?? ""))?.token ?? "";
    runsHere = [];
    await runWithout(undefined, [create("alpha")]);
    store = await runWithout("dynamodb:UpdateItem", [create("beta")]);
    leftBehind.beta = await tenantWrites("beta");
    keyring = await runWithout("kms:GenerateDataKey", [create("gamma")]);
    leftBehind.gamma = await tenantWrites("gamma");
    retried = await runWithout(undefined, [create("beta"), create("gamma")]);
  }, 60_000);
  afterAll(async () => {
    await denied?.close();
    admin = bootstrapToken(bootstrapSecret)?.token ?? "";
  });

  const error = (run: Invocation) => JSON.parse(run.results[0]?.body ?? "{}").error;

  it("a denied DynamoDB call answers 503 store_unavailable, naming the action in the log", () => {
    expect(store.results[0]?.statusCode).toBe(503);
    expect(error(store)).toMatchObject({ code: "store_unavailable" });
    expect(store.logs).toMatch(/DynamoDB UpdateItem failed: AccessDeniedException/);
    expect(denied.proxy.calls.some((c) => c.action === "dynamodb:UpdateItem" && !c.allowed)).toBe(true);
  });

  it("a denied KMS call answers 503 keyring_unavailable, naming the action in the log", () => {
    expect(keyring.results[0]?.statusCode).toBe(503);
    expect(error(keyring)).toMatchObject({ code: "keyring_unavailable" });
    expect(keyring.logs).toMatch(/KMS GenerateDataKey failed: AccessDeniedException/);
  });

  it("leaves nothing half-written: no tenant item and no directory entry, and a retry succeeds", async () => {
    expect(leftBehind).toEqual({ beta: [], gamma: [] });
    expect(retried.results.map((r) => r.statusCode)).toEqual([201, 201]);
    expect(await tenantWrites("beta")).toHaveLength(2);
  });

  it("logs no resource contents: no token, no bootstrap secret, no AWS message with its ARNs", () => {
    const secret = denied.secretValue(denied.shape.secrets[0]?.arn ?? "");
    for (const run of runsHere) {
      expect(run.logs).not.toContain(secret);
      expect(run.logs).not.toContain(admin);
      expect(run.logs).not.toContain("is not authorized to perform");
    }
  });
});
