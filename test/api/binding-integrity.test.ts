import { randomBytes } from "node:crypto";
import { Logger } from "@aws-lambda-powertools/logger";
import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bindingIdFor } from "../../shared/crypto/binding-id.ts";
import { kekFingerprint, LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { getRawItem, putRawItem } from "../../testing/faults.ts";
import { type Harness, randomKek, startHarness, startStore } from "../../testing/harness.ts";
import { IAM_ACCOUNT, iamApiEvent } from "../../testing/http-api-event.ts";
import { lambdaCaller } from "../../testing/lambda-call.ts";
import { captureProcessOutput, type OutputCapture } from "../../testing/output-capture.ts";

// Binding items carry a MAC under a key the table never holds, as token items do
// (test/api/token-integrity.test.ts). Everything here edits the table the way a principal with table
// write access, and no access to the key's keeper, could: through the real SDK.

const KEK = randomKek();
const SECRET_VALUE = `binding-integrity-canary-${randomBytes(8).toString("hex")}`;
const reason = { "x-audit-reason": "binding integrity test" };
const read = "/iam/v1/tenants/acme/secrets/db-password";

let store: { dynamo: LocalDynamo; table: Table };
let h: Harness;
let admin: string;
let output: OutputCapture;
let viaLambda: ReturnType<typeof lambdaCaller>;

const roleArn = (name: string) => `arn:aws:iam::${IAM_ACCOUNT}:role/apps/${name}`;
const sessionOf = (name: string) => `arn:aws:sts::${IAM_ACCOUNT}:assumed-role/${name}/s-1`;
/** The id a role's binding is filed under, as the service derives it (names compare without case). */
const idOf = (name: string) => bindingIdFor(`aws:${IAM_ACCOUNT}:role:${name.toLowerCase()}`);
const bindingKey = (bindingId: string) => ({ pk: "BINDINGS", sk: bindingId });
const failures = () => h.runtime.metrics.count("IntegrityFailures");
const readAs = (name: string, path = read) =>
  viaLambda(iamApiEvent("GET", path, sessionOf(name), { headers: reason }));

async function bind(name: string, role = "runner", tenants = ["acme"]) {
  const response = await h.call("POST", "/v1/bindings", {
    token: admin,
    body: { principalArn: roleArn(name), role, tenants },
  });
  expect(response.status).toBe(201);
  return response.json();
}

async function updateRaw(key: { pk: string; sk: string }, update: string, names: object, values?: object) {
  await store.table.doc.send(
    new UpdateCommand({
      TableName: store.table.name,
      Key: key,
      UpdateExpression: update,
      ExpressionAttributeNames: names as Record<string, string>,
      ...(values === undefined ? {} : { ExpressionAttributeValues: values as Record<string, unknown> }),
    }),
  );
}

const logLines = () =>
  output.writes
    .join("")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
const integrityLogs = () =>
  logLines().filter((line) => String(line.message).includes("binding item failed its integrity check"));

async function deniedDetail(response: { headers: Headers }): Promise<string | undefined> {
  const events = (await (await h.call("GET", "/v1/tenants/acme/audit?limit=999", { token: admin })).json())
    .events;
  return events.find((e: { requestId: string }) => e.requestId === response.headers.get("x-request-id"))
    ?.detail;
}

beforeAll(async () => {
  output = captureProcessOutput();
  store = await startStore();
  h = await startHarness({
    store,
    keyring: new LocalKeyring({ active: KEK, previous: [] }),
    logger: new Logger({ serviceName: "strongbox-binding-integrity", logLevel: "INFO" }),
    env: { AUDIT_DENIAL_WINDOW_SECONDS: "0" },
  });
  viaLambda = lambdaCaller(h.app);
  admin = await h.token("admin");
  for (const tenantId of ["acme", "globex"]) {
    expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId } })).status).toBe(201);
  }
  expect(
    (
      await h.call("PUT", "/v1/tenants/acme/secrets/db-password", {
        token: admin,
        body: { value: SECRET_VALUE },
      })
    ).status,
  ).toBe(200);
});
afterAll(async () => {
  output.restore();
  await store.dynamo.close();
});

describe("binding items carry a MAC", () => {
  it("are stored with a MAC and a reference naming the KEK's fingerprint, under the id derived from the principal", async () => {
    const created = await bind("genuine");
    expect(created.bindingId).toBe(idOf("genuine"));
    const item = await getRawItem(store.table, bindingKey(created.bindingId));
    expect(item.mac).toMatch(/^[0-9a-f]{64}$/);
    expect(item.macKeyRef).toBe(`local:${kekFingerprint(KEK)}`);
    expect(Object.keys(item).sort()).toEqual(
      ["bindingId", "createdAt", "mac", "macKeyRef", "pk", "principalArn", "role", "sk", "tenants"].sort(),
    );
    expect((await readAs("genuine")).status).toBe(200);
  });

  it("a forged binding item for an unbound role, with role admin, is refused as unknown, counted and logged by id", async () => {
    const genuine = await getRawItem(store.table, bindingKey(idOf("genuine")));
    const forgeries = {
      "no MAC": {},
      "a genuine binding's MAC copied": { mac: genuine.mac, macKeyRef: genuine.macKeyRef },
      "a MAC of its own": { mac: randomBytes(32).toString("hex"), macKeyRef: genuine.macKeyRef },
      "a reference to a key it made up": {
        mac: randomBytes(32).toString("hex"),
        macKeyRef: "local:kek-0000",
      },
    };
    for (const [n, [label, seal]] of Object.entries(forgeries).entries()) {
      const name = `forger-${n}`;
      const bindingId = idOf(name);
      await putRawItem(store.table, {
        ...bindingKey(bindingId),
        bindingId,
        principalArn: roleArn(name),
        role: "admin",
        tenants: ["*"],
        createdAt: new Date().toISOString(),
        ...seal,
      });
      const before = failures();
      const logsBefore = integrityLogs().length;
      const response = await readAs(name);
      expect(response.status, label).toBe(403);
      expect(response.text, label).not.toContain(SECRET_VALUE);
      expect(failures(), label).toBe(before + 1);
      const logged = integrityLogs().slice(logsBefore);
      expect(
        logged.map((line) => line.bindingId),
        label,
      ).toEqual([bindingId]);
      expect(await deniedDetail(response), label).toBe("failed_integrity");
      // Nor does the forgery reach the admin routes.
      expect((await viaLambda(iamApiEvent("GET", "/iam/v1/bindings", sessionOf(name)))).status, label).toBe(
        403,
      );
    }
  });

  it.each([
    ["role raised to admin", "SET #field = :value", "role", "admin"],
    ["another tenant added", "SET #field = :value", "tenants", ["acme", "globex"]],
    ["every tenant granted", "SET #field = :value", "tenants", ["*"]],
    ["principal swapped", "SET #field = :value", "principalArn", roleArn("someone-else")],
    ["binding id changed", "SET #field = :value", "bindingId", "a".repeat(26)],
    ["MAC removed", "REMOVE #field", "mac", undefined],
  ] as const)("an edited binding (%s) grants nothing and is counted", async (label, update, field, value) => {
    const name = `edited-${label.replaceAll(" ", "-")}`;
    await bind(name);
    expect((await readAs(name)).status).toBe(200);
    await updateRaw(
      bindingKey(idOf(name)),
      update,
      { "#field": field },
      value === undefined ? undefined : { ":value": value },
    );
    const before = failures();
    const own = await readAs(name);
    expect(own.status).toBe(403);
    expect(failures()).toBe(before + 1);
    expect((await readAs(name, "/iam/v1/tenants/globex/secrets")).status).toBe(403);
  });

  it("copying a genuine binding under another role's id does not bind that role", async () => {
    await bind("original");
    const item = await getRawItem(store.table, bindingKey(idOf("original")));
    await putRawItem(store.table, { ...item, ...bindingKey(idOf("copycat")) });
    const before = failures();
    expect((await readAs("copycat")).status).toBe(403);
    expect(failures()).toBe(before + 1);
  });

  it("undoing a delete (REMOVE deletedAt) keeps the binding refused, and it cannot be deleted again", async () => {
    const { bindingId } = await bind("deleted");
    expect((await h.call("DELETE", `/v1/bindings/${bindingId}`, { token: admin })).status).toBe(204);
    expect((await readAs("deleted")).status).toBe(403);
    await updateRaw(bindingKey(bindingId), "REMOVE #field", { "#field": "deletedAt" });
    const before = failures();
    expect((await readAs("deleted")).status).toBe(403);
    expect(failures()).toBe(before + 1);
    expect((await h.call("DELETE", `/v1/bindings/${bindingId}`, { token: admin })).status).toBe(404);
  });

  it("the listing leaves out items that fail their check, and counts each", async () => {
    const before = failures();
    const listed = await (await h.call("GET", "/v1/bindings?limit=999", { token: admin })).json();
    const arns = listed.bindings.map((b: { principalArn: string }) => b.principalArn);
    expect(arns).toEqual(expect.arrayContaining([roleArn("genuine"), roleArn("original")]));
    for (const tampered of ["forger-0", "edited-role-raised-to-admin", "copycat", "deleted"]) {
      expect(arns).not.toContain(roleArn(tampered));
    }
    // Four forgeries, six edits, one copy, one undone delete.
    expect(failures() - before).toBe(12);
  });

  it("an admin can bind a role again over an item that failed its check", async () => {
    await bind("edited-role-raised-to-admin", "runner", ["acme"]);
    expect((await readAs("edited-role-raised-to-admin")).status).toBe(200);
    await bind("deleted", "runner", ["acme"]);
    expect((await readAs("deleted")).status).toBe(200);
  });

  it("logs no secret value and no token", () => {
    const logs = output.writes.join("");
    expect(logs).not.toContain(SECRET_VALUE);
    expect(logs).not.toContain(admin);
  });
});
