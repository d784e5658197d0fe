import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { expect } from "vitest";
import { envelopeDekVersion } from "../shared/crypto/envelope.ts";
import { deadlineIn } from "../shared/domain/work.ts";
import { SecretRepository } from "../shared/storage/secret-repository.ts";
import type { Table } from "../shared/storage/table.ts";
import { deleteRawItem, type InjectedFault, injectFault, type SdkCall } from "./faults.ts";
import type { Harness } from "./harness.ts";

/** What a secret should read back as: its values by version, and which versions carry which label. */
export interface SecretModel {
  values: string[];
  current: number;
  previous?: number;
  pending?: number;
  deleted?: boolean;
}
export type TenantModel = Record<string, SecretModel>;

const REASON = { "x-audit-reason": "rotation test" };

async function put(h: Harness, token: string, tenant: string, name: string, body: Record<string, unknown>) {
  const response = await h.call("PUT", `/v1/tenants/${tenant}/secrets/${name}`, { token, body });
  expect(response.status, `${name}: ${response.text}`).toBe(200);
  return (await response.json()).version as number;
}

/**
 * A tenant with every shape a sweep must handle: several versions (archive items), a pending version
 * inline in its head, a soft-deleted secret, and a handful of single-version ones.
 */
export async function seedTenant(h: Harness, token: string, tenant: string, bulk = 6): Promise<TenantModel> {
  const created = await h.call("POST", "/v1/tenants", { token, body: { tenantId: tenant } });
  expect(created.status).toBe(201);
  const model: TenantModel = {};
  const write = async (name: string, values: string[]) => {
    for (const value of values) await put(h, token, tenant, name, { value });
    model[name] = {
      values,
      current: values.length,
      ...(values.length > 1 ? { previous: values.length - 1 } : {}),
    };
  };
  await write("db-password", [`${tenant}-db-1`, `${tenant}-db-2`, `${tenant}-db-3 ✓`]);
  await write("api-key", [`${tenant}-api-1`]);
  await write("webhook", [`${tenant}-hook-1`, `${tenant}-hook-2`]);
  const pending = await put(h, token, tenant, "webhook", {
    value: `${tenant}-hook-3-pending`,
    stage: "pending",
  });
  const webhook = model.webhook as SecretModel;
  webhook.values.push(`${tenant}-hook-3-pending`);
  webhook.pending = pending;
  await write("doomed", [`${tenant}-doomed-1`, `${tenant}-doomed-2`]);
  expect((await h.call("DELETE", `/v1/tenants/${tenant}/secrets/doomed`, { token })).status).toBe(204);
  (model.doomed as SecretModel).deleted = true;
  for (let i = 0; i < bulk; i += 1) await write(`bulk-${i}`, [`${tenant}-bulk-${i}`]);
  return model;
}

/** Every live secret reads back right at every version and every label; deleted ones stay hidden. */
export async function expectAllReadable(h: Harness, token: string, tenant: string, model: TenantModel) {
  for (const [name, secret] of Object.entries(model)) {
    const base = `/v1/tenants/${tenant}/secrets/${name}`;
    const get = async (query: string) => h.call("GET", `${base}${query}`, { token, headers: REASON });
    if (secret.deleted) {
      expect((await get("")).status, `${name} is deleted`).toBe(404);
      continue;
    }
    for (const [index, value] of secret.values.entries()) {
      const got = await get(`?version=${index + 1}`);
      expect(got.status, `${name} v${index + 1}: ${got.text}`).toBe(200);
      expect(await got.json()).toMatchObject({ version: index + 1, value });
    }
    const labels: [string, number | undefined][] = [
      ["current", secret.current],
      ["previous", secret.previous],
      ["pending", secret.pending],
    ];
    for (const [stage, version] of labels) {
      const got = await get(`?stage=${stage}`);
      if (version === undefined) {
        expect(got.status, `${name} has no ${stage}`).toBe(404);
      } else {
        expect(got.status, `${name} ${stage}: ${got.text}`).toBe(200);
        expect(await got.json()).toMatchObject({ version, value: secret.values[version - 1] });
      }
    }
  }
}

/** DEK versions of every ciphertext stored for a tenant, straight from the table. */
export async function storedDekVersions(table: Table, tenant: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const repository = new SecretRepository(table);
  let after: string | undefined;
  do {
    const page = await repository.scanSealed(tenant, after, 100);
    for (const item of page.items) {
      for (const sealed of [item.current, item.pending]) {
        if (sealed === undefined) continue;
        const version = String(envelopeDekVersion(sealed.envelope));
        counts[version] = (counts[version] ?? 0) + 1;
      }
    }
    after = page.last;
  } while (after !== undefined);
  return counts;
}

const WRITES = new Set(["PutItemCommand", "UpdateItemCommand", "DeleteItemCommand"]);

function partitionOf(call: SdkCall): string | undefined {
  const source = (call.input.Item ?? call.input.Key) as Record<string, unknown> | undefined;
  const pk = source?.pk;
  if (typeof pk === "string") return pk;
  const marshalled = (pk as { S?: unknown } | undefined)?.S;
  return typeof marshalled === "string" ? marshalled : undefined;
}

/**
 * A process crash after `k` writes: every table write after the k-th (audit appends aside, which the
 * audit tests cover) fails before it leaves the process, as if the process had died there.
 */
export function crashAfterWrites(table: Table, k: number): InjectedFault & { readonly writes: number } {
  let writes = 0;
  const fault = injectFault(table, (call) => {
    if (!WRITES.has(call.commandName) || (partitionOf(call)?.startsWith("AUDIT#") ?? false)) return false;
    writes += 1;
    return writes > k;
  });
  return {
    get refused() {
      return fault.refused;
    },
    get writes() {
      return writes;
    },
    arm: fault.arm,
    disarm: fault.disarm,
    remove: fault.remove,
  };
}

/**
 * The DEK retirement grace tests run with, injected through the harness (the environment refuses
 * anything under ten seconds). Writers must finish within half of it, so it is not made smaller.
 */
export const TEST_RETIRE_GRACE_MS = 500;

/** Runs the scheduled work until `tenant`'s sweep is done, waiting out the grace periods between runs. */
export async function runUntilSwept(h: Harness, tenant: string, label: string) {
  for (let run = 0; run < 40; run += 1) {
    const summary = await h.runtime.scheduledWork.run(deadlineIn(20_000), `${label}-${run}`);
    if (!(await h.runtime.dekSweep.pendingSweeps()).includes(tenant)) return summary;
    await new Promise((resolve) => setTimeout(resolve, TEST_RETIRE_GRACE_MS / 4));
  }
  throw new Error(`sweep of ${tenant} did not finish`);
}

/**
 * Makes a table look as versions before the tenant directory left it: the KEK registry item without
 * its `directoryComplete` flag, and no directory entry for `tenantIds`.
 */
export async function asWrittenBeforeTheDirectory(table: Table, tenantIds: readonly string[]): Promise<void> {
  await table.doc.send(
    new UpdateCommand({
      TableName: table.name,
      Key: { pk: "META", sk: "KEKS" },
      UpdateExpression: "REMOVE directoryComplete",
    }),
  );
  for (const tenantId of tenantIds) await deleteRawItem(table, { pk: "TENANTS", sk: tenantId });
}
