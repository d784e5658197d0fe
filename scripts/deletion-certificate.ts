/**
 * `npm run tenant:certificate -- <tenantId> ...`: prints each tenant's deletion certificate as JSON
 * and whether its MAC verifies under this deployment's item-integrity key. Exit code 0 when every
 * certificate verifies, 1 when one does not or a tenant has none, 2 when it could not check.
 *
 * It reads the same configuration as the service and `audit:verify` (KEK or KMS_KEY_ID with
 * AUDIT_MAC_KEY_ID, TABLE_NAME, DYNAMODB_ENDPOINT; without DYNAMODB_ENDPOINT the local server's files
 * under DATA_DIR, so stop `npm start` first).
 */
import { join, resolve } from "node:path";
import { ConfigError, StrongboxError } from "../shared/domain/errors.ts";
import { tenantIdSchema } from "../shared/domain/schemas.ts";
import { readRuntimeConfig } from "../shared/runtime/config.ts";
import { createKeyring, createRuntime } from "../shared/runtime/container.ts";
import { type OpenedTable, openTable } from "../shared/storage/local-dynamo.ts";

class UsageError extends Error {}

async function main(): Promise<number> {
  const env = process.env;
  const tenants = process.argv.slice(2);
  if (tenants.length === 0 || tenants.some((id) => !tenantIdSchema.safeParse(id).success)) {
    throw new UsageError("usage: npm run tenant:certificate -- <tenantId> [<tenantId> ...]");
  }
  env.AWS_EC2_METADATA_DISABLED ??= "true";
  env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const dataDir = resolve(env.DATA_DIR ?? ".data");
  const config = readRuntimeConfig(env);
  const { keyring, chainKeys } = createKeyring(env, config, join(dataDir, "dev-kek"));
  let store: OpenedTable;
  try {
    store = await openTable({
      region: config.region,
      tableName: config.tableName,
      endpoint: config.dynamoEndpoint,
      localPath: join(dataDir, "dynamodb"),
    });
  } catch {
    console.error(
      `cannot open ${join(dataDir, "dynamodb")}: stop the running server or set DYNAMODB_ENDPOINT`,
    );
    return 2;
  }
  try {
    const { tenantDeletion } = createRuntime({ keyring, chainKeys, table: store.table, config });
    let failed = 0;
    for (const tenantId of tenants) {
      const check = await tenantDeletion.check(tenantId);
      if (check === undefined) {
        failed += 1;
        console.log(`${tenantId}: no deletion certificate`);
        continue;
      }
      if (!check.verified) failed += 1;
      console.log(`${tenantId}: ${check.verified ? "certificate verifies" : "certificate does NOT verify"}`);
      console.log(JSON.stringify(check.certificate, null, 2));
    }
    return failed === 0 ? 0 : 1;
  } finally {
    await store.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof ConfigError || error instanceof UsageError) console.error(error.message);
    else if (error instanceof StrongboxError) console.error(`${error.code}: ${error.message}`);
    else console.error(`certificate check failed: ${error instanceof Error ? error.name : "unknown error"}`);
    process.exit(2);
  },
);
