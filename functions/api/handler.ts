import { handle } from "hono/aws-lambda";
import { readRuntimeConfig } from "../../shared/runtime/config.ts";
import { createKeyring, createRuntime } from "../../shared/runtime/container.ts";
import { createTable } from "../../shared/storage/table.ts";
import { createApp } from "./app.ts";

// Built once per cold start; a missing or malformed KEK throws here, so the function never serves.
const config = readRuntimeConfig(process.env);
const { keyring } = createKeyring(process.env, config);
const table = createTable(
  {
    region: config.region,
    ...(config.dynamoEndpoint === undefined ? {} : { endpoint: config.dynamoEndpoint }),
  },
  config.tableName,
);

export const handler = handle(createApp(createRuntime({ keyring, table, config })));
