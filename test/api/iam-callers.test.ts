import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import type { AuditEvent } from "../../shared/domain/types.ts";
import { type Bundle, buildBundle, type Invocation, invokeBundle } from "../../testing/bundles.ts";
import {
  DUMMY_CREDENTIALS,
  type Harness,
  randomKek,
  startHarness,
  startStore,
} from "../../testing/harness.ts";
import { httpApiEvent, IAM_ACCOUNT, iamApiEvent } from "../../testing/http-api-event.ts";

// IAM callers through the bundle API Gateway invokes (built as CDK builds it, run in a fresh Node
// process), with HTTP API events as the IAM route delivers them: `requestContext.authorizer.iam` names
// the principal whose SigV4 signature API Gateway verified. API Gateway itself cannot run here; what it
// enforces (the route's IAM authorization, execute-api:Invoke) is tested on the synthesized template in
// test/infra/stacks.test.ts and test/infra/grant-read.test.ts.

const KEK = randomKek();
const CANARY = `iam-caller-canary-${randomBytes(8).toString("hex")}`;
const READER_ROLE = `arn:aws:iam::${IAM_ACCOUNT}:role/services/reporting-reader`;
/** A session of that role: the assumed-role ARN drops the role's path (`services/`). */
const READER = `arn:aws:sts::${IAM_ACCOUNT}:assumed-role/reporting-reader/i-0abc123`;
const AUDITOR_USER = `arn:aws:iam::${IAM_ACCOUNT}:user/ops/alice`;
const STRANGER = `arn:aws:sts::${IAM_ACCOUNT}:assumed-role/never-bound/s-1`;
const reason = { "x-audit-reason": "iam callers test" };
const json = { "content-type": "application/json" };
const read = "/iam/v1/tenants/acme/secrets/db-password";

let bundle: Bundle;
let h: Harness;
let admin: string;
let env: Record<string, string>;
const answers = new Map<string, { statusCode: number; body: string; headers: Record<string, string> }>();
const runs: Invocation[] = [];

async function invoke(steps: readonly (readonly [string, unknown])[]): Promise<void> {
  const run = await invokeBundle(
    bundle,
    env,
    steps.map(([, event]) => event),
  );
  runs.push(run);
  for (const [n, [name]] of steps.entries()) answers.set(name, run.results[n]);
}
const status = (name: string) => answers.get(name)?.statusCode;
const body = (name: string) => JSON.parse(answers.get(name)?.body || "null");
const requestIdOf = (name: string) => answers.get(name)?.headers["x-request-id"];

async function trail(scope: string): Promise<AuditEvent[]> {
  const path = scope === "_system" ? "/v1/audit?limit=999" : `/v1/tenants/${scope}/audit?limit=999`;
  return (await (await h.call("GET", path, { token: admin })).json()).events;
}

beforeAll(async () => {
  const store = await startStore();
  [bundle, h] = await Promise.all([
    buildBundle("api"),
    startHarness({ store, keyring: new LocalKeyring({ active: KEK, previous: [] }) }),
  ]);
  admin = await h.token("admin");
  env = {
    TABLE_NAME: store.table.name,
    DYNAMODB_ENDPOINT: store.dynamo.endpoint,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: "true",
    CREDENTIALS_KEK: Buffer.from(KEK).toString("base64"),
    // Each refusal is looked up by its own request id, so repeats are not collapsed.
    AUDIT_DENIAL_WINDOW_SECONDS: "0",
  };
  const bearer = { ...json, authorization: `Bearer ${admin}` };
  await invoke([
    ["create acme", httpApiEvent("POST", "/v1/tenants", { headers: bearer, body: '{"tenantId":"acme"}' })],
    [
      "create globex",
      httpApiEvent("POST", "/v1/tenants", { headers: bearer, body: '{"tenantId":"globex"}' }),
    ],
    [
      "write acme secret",
      httpApiEvent("PUT", "/v1/tenants/acme/secrets/db-password", {
        headers: bearer,
        body: JSON.stringify({ value: CANARY }),
      }),
    ],
    [
      "write globex secret",
      httpApiEvent("PUT", "/v1/tenants/globex/secrets/db-password", {
        headers: bearer,
        body: JSON.stringify({ value: `globex-${CANARY}` }),
      }),
    ],
    [
      "bind reader",
      httpApiEvent("POST", "/v1/bindings", {
        headers: bearer,
        body: JSON.stringify({ principalArn: READER_ROLE, role: "runner", tenants: ["acme"] }),
      }),
    ],
    [
      "bind auditor user",
      httpApiEvent("POST", "/v1/bindings", {
        headers: bearer,
        body: JSON.stringify({ principalArn: AUDITOR_USER, role: "auditor", tenants: ["acme"] }),
      }),
    ],
    ["reader reads acme", iamApiEvent("GET", read, READER, { headers: reason })],
    ["reader lists acme", iamApiEvent("GET", "/iam/v1/tenants/acme/secrets", READER)],
    [
      "reader reads globex",
      iamApiEvent("GET", "/iam/v1/tenants/globex/secrets/db-password", READER, { headers: reason }),
    ],
    [
      "reader writes acme",
      iamApiEvent("PUT", "/iam/v1/tenants/acme/secrets/db-password", READER, {
        headers: json,
        body: '{"value":"overwritten"}',
      }),
    ],
    ["reader lists bindings", iamApiEvent("GET", "/iam/v1/bindings", READER)],
    ["auditor user reads the trail", iamApiEvent("GET", "/iam/v1/tenants/acme/audit", AUDITOR_USER)],
    ["stranger reads acme", iamApiEvent("GET", read, STRANGER, { headers: reason })],
    [
      "other account's session reads acme",
      iamApiEvent("GET", read, READER.replace(IAM_ACCOUNT, "222222222222"), {
        headers: reason,
        accountId: "222222222222",
      }),
    ],
    [
      "session of another account than API Gateway reported",
      iamApiEvent("GET", read, READER, { headers: reason, accountId: "222222222222" }),
    ],
    [
      "iam route without IAM context, with an admin bearer token",
      httpApiEvent("GET", read, { headers: { ...reason, authorization: `Bearer ${admin}` } }),
    ],
    [
      "bearer route with an IAM context and no token",
      iamApiEvent("GET", "/v1/tenants/acme/secrets/db-password", READER, { headers: reason }),
    ],
    [
      "bearer route with headers claiming an IAM identity",
      httpApiEvent("GET", "/v1/tenants/acme/secrets/db-password", {
        headers: {
          ...reason,
          "x-amzn-iam-user-arn": READER,
          "x-amzn-requestcontext": JSON.stringify({ authorizer: { iam: { userArn: READER } } }),
        },
      }),
    ],
    ["list bindings", httpApiEvent("GET", "/v1/bindings", { headers: { authorization: `Bearer ${admin}` } })],
  ]);
  const reader = (body("list bindings")?.bindings ?? []).find(
    (b: { principalArn: string }) => b.principalArn === READER_ROLE,
  );
  await invoke([
    [
      "delete reader",
      httpApiEvent("DELETE", `/v1/bindings/${reader?.bindingId}`, {
        headers: { authorization: `Bearer ${admin}` },
      }),
    ],
    ["reader reads after delete", iamApiEvent("GET", read, READER, { headers: reason })],
    [
      "rebind reader as operator",
      httpApiEvent("POST", "/v1/bindings", {
        headers: { ...json, authorization: `Bearer ${admin}` },
        body: JSON.stringify({ principalArn: READER_ROLE, role: "operator", tenants: ["acme"] }),
      }),
    ],
    [
      "operator session writes acme",
      iamApiEvent("PUT", "/iam/v1/tenants/acme/secrets/iam-written", READER, {
        headers: json,
        body: '{"value":"written by an IAM caller"}',
      }),
    ],
  ]);
}, 120_000);
afterAll(async () => {
  await h?.close();
  await h?.dynamo.close();
});

describe("IAM callers through the bundled API function", () => {
  it("a bound role's session reads and lists its tenant's secrets on /iam/v1", () => {
    expect(status("bind reader")).toBe(201);
    expect(body("bind reader")).toMatchObject({
      principalArn: READER_ROLE,
      role: "runner",
      tenants: ["acme"],
    });
    expect(body("reader reads acme")).toMatchObject({ name: "db-password", version: 1, value: CANARY });
    expect(body("reader lists acme").secrets.map((s: { name: string }) => s.name)).toEqual(["db-password"]);
  });

  it("the binding's role and tenants bound it: another tenant, a write, admin routes are 403", () => {
    for (const step of ["reader reads globex", "reader writes acme", "reader lists bindings"]) {
      expect(status(step), step).toBe(403);
      expect(body(step).error.code).toBe("forbidden");
    }
    expect(answers.get("reader reads globex")?.body).not.toContain("globex-");
  });

  it("an IAM user binds as itself", () => {
    expect(status("auditor user reads the trail")).toBe(200);
  });

  it("an unknown principal, or one of another account, is 403", () => {
    for (const step of [
      "stranger reads acme",
      "other account's session reads acme",
      "session of another account than API Gateway reported",
    ]) {
      expect(status(step), step).toBe(403);
    }
  });

  it("no request without API Gateway's IAM context gets an IAM identity, and the IAM routes read no bearer token", () => {
    expect(status("iam route without IAM context, with an admin bearer token")).toBe(401);
    expect(status("bearer route with an IAM context and no token")).toBe(401);
    expect(status("bearer route with headers claiming an IAM identity")).toBe(401);
  });

  it("a deleted binding grants nothing; a new one for the same role takes effect", () => {
    expect(status("delete reader")).toBe(204);
    expect(status("reader reads after delete")).toBe(403);
    expect(status("rebind reader as operator")).toBe(201);
    expect(status("operator session writes acme")).toBe(200);
  });

  it("names the caller's own ARN, session included, as the actor of every record", async () => {
    const acme = await trail("acme");
    const byRequest = (step: string) => acme.filter((e) => e.requestId === requestIdOf(step));
    expect(byRequest("reader reads acme")).toEqual([
      expect.objectContaining({ action: "secret.read", outcome: "success", actor: READER, role: "runner" }),
    ]);
    const write = byRequest("operator session writes acme").map((e) => [e.outcome, e.actor, e.role]);
    expect(write.sort()).toEqual([
      ["attempt", READER, "operator"],
      ["success", READER, "operator"],
    ]);
    expect(acme.filter((e) => e.requestId === requestIdOf("auditor user reads the trail"))).toEqual([
      expect.objectContaining({ action: "audit.read", actor: AUDITOR_USER, role: "auditor" }),
    ]);
    expect((await trail("globex")).filter((e) => e.requestId === requestIdOf("reader reads globex"))).toEqual(
      [expect.objectContaining({ outcome: "denied", actor: READER, role: "runner" })],
    );
  });

  it("records an unknown principal's refusal with its ARN", async () => {
    const denied = (await trail("acme")).filter((e) => e.requestId === requestIdOf("stranger reads acme"));
    expect(denied).toEqual([
      expect.objectContaining({
        action: "secret.read",
        outcome: "denied",
        actor: STRANGER,
        role: "aws",
        detail: "unbound_principal",
      }),
    ]);
  });

  it("audits every binding change in the system trail, by its admin", async () => {
    const system = await trail("_system");
    const changes = system
      .filter((e) => e.action.startsWith("binding.") && e.outcome === "success")
      .map((e) => [e.action, e.detail]);
    expect(changes).toEqual(
      expect.arrayContaining([
        ["binding.create", expect.stringContaining(`bound ${READER_ROLE} as runner for acme`)],
        ["binding.create", expect.stringContaining(`bound ${AUDITOR_USER} as auditor for acme`)],
        ["binding.list", "2 bindings"],
        ["binding.delete", expect.stringContaining(`of ${READER_ROLE}`)],
        ["binding.create", expect.stringContaining(`bound ${READER_ROLE} as operator for acme`)],
      ]),
    );
  });

  it("logs no secret value and no token", () => {
    const logs = runs.map((run) => run.logs).join("\n");
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).not.toContain(CANARY);
    expect(logs).not.toContain(admin);
    expect(logs).not.toContain(admin.split("_")[2] ?? "unreachable");
  });
});
