import { expect } from "vitest";
import type { Harness } from "./harness.ts";

/**
 * Gives a new tenant a chain of exactly `records` audit records (an even number, at least 2), from
 * real API calls: creating the tenant records an attempt and a success, and so does each write.
 */
export async function seedChain(h: Harness, admin: string, tenant: string, records: number): Promise<void> {
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: tenant } })).status).toBe(
    201,
  );
  for (let i = 0; i < (records - 2) / 2; i += 1) {
    const put = await h.call("PUT", `/v1/tenants/${tenant}/secrets/s${i}`, {
      token: admin,
      body: { value: `v${i}` },
    });
    expect(put.status).toBe(200);
  }
}
