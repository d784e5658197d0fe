import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../functions/api/app.ts";
import { bootstrapToken, parseToken } from "../../shared/crypto/tokens.ts";
import { ConfigError } from "../../shared/domain/errors.ts";
import { createLambdaRuntime } from "../../shared/runtime/lambda.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import type { Table } from "../../shared/storage/table.ts";
import { DUMMY_CREDENTIALS, startStore } from "../../testing/harness.ts";
import {
  type SecretsManagerEndpoint,
  startSecretsManagerEndpoint,
} from "../../testing/secrets-manager-endpoint.ts";

// The bootstrap admin token of an AWS deployment: read from Secrets Manager (through the real client,
// against the loopback endpoint) at cold start, and made usable in the table.

let store: { dynamo: LocalDynamo; table: Table };
let secrets: SecretsManagerEndpoint;
let baseEnv: Record<string, string>;

beforeAll(async () => {
  store = await startStore();
  secrets = await startSecretsManagerEndpoint();
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
  });
  baseEnv = {
    TABLE_NAME: store.table.name,
    DYNAMODB_ENDPOINT: store.dynamo.endpoint,
    AWS_REGION: "us-east-1",
    CREDENTIALS_KEK: randomBytes(32).toString("base64"),
    SECRETS_MANAGER_ENDPOINT: secrets.endpoint,
  };
});
afterAll(async () => {
  await secrets.close();
  await store.dynamo.close();
});

const hex64 = () => randomBytes(32).toString("hex");

async function coldStart(secretArn: string) {
  const runtime = await createLambdaRuntime({ ...baseEnv, BOOTSTRAP_TOKEN_SECRET_ARN: secretArn });
  return { runtime, app: createApp(runtime) };
}

const createTenant = (app: ReturnType<typeof createApp>, token: string, tenantId: string) =>
  app.request("/v1/tenants", {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ tenantId }),
  });

describe("bootstrapToken", () => {
  it("frames 64 hex characters as a token the service parses, with an id derived from them", () => {
    const secret = hex64();
    const minted = bootstrapToken(secret);
    expect(parseToken(minted?.token ?? "")).toEqual({ tokenId: minted?.tokenId, secret });
    expect(bootstrapToken(secret)?.tokenId).toBe(minted?.tokenId);
    expect(bootstrapToken(hex64())?.tokenId).not.toBe(minted?.tokenId);
  });

  it("refuses anything but 64 lowercase hex characters", () => {
    for (const bad of ["", hex64().slice(1), hex64().toUpperCase(), `${hex64()}\n`, "g".repeat(64)]) {
      expect(bootstrapToken(bad)).toBeUndefined();
    }
  });
});

describe("the bootstrap admin token from Secrets Manager", () => {
  it("is issued at the first cold start and works as an admin token", async () => {
    const secret = hex64();
    const { app } = await coldStart(secrets.putSecret("strongbox/dev/bootstrap-admin-token", secret));
    const response = await createTenant(app, bootstrapToken(secret)?.token ?? "", "bootstrap-a");
    expect(response.status).toBe(201);
  });

  it("is read once per process, and a later cold start finds the token already active", async () => {
    const secret = hex64();
    const arn = secrets.putSecret("strongbox/staging/bootstrap-admin-token", secret);
    const before = secrets.calls.GetSecretValue ?? 0;
    await coldStart(arn);
    const { app } = await coldStart(arn);
    expect((secrets.calls.GetSecretValue ?? 0) - before).toBe(1);
    expect((await createTenant(app, bootstrapToken(secret)?.token ?? "", "bootstrap-b")).status).toBe(201);
  });

  it("stays revoked once revoked, and a new secret value gives a new working token", async () => {
    const first = hex64();
    const { app } = await coldStart(secrets.putSecret("revoked", first));
    const firstToken = bootstrapToken(first);
    const revoke = await app.request(`/v1/tokens/${firstToken?.tokenId}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${firstToken?.token}` },
    });
    expect(revoke.status).toBe(204);
    const again = await coldStart(secrets.putSecret("revoked-again", first));
    expect((await createTenant(again.app, firstToken?.token ?? "", "bootstrap-c")).status).toBe(401);

    const second = hex64();
    const replaced = await coldStart(secrets.putSecret("replaced", second));
    expect(
      (await createTenant(replaced.app, bootstrapToken(second)?.token ?? "", "bootstrap-c")).status,
    ).toBe(201);
  });

  it("stops the cold start, naming the variable, when the secret cannot be read", async () => {
    secrets.failNext("AccessDeniedException");
    const denied = coldStart(secrets.putSecret("denied", hex64()));
    await expect(denied).rejects.toThrow(ConfigError);
    await expect(denied).rejects.toThrow(
      /BOOTSTRAP_TOKEN_SECRET_ARN could not be read: AccessDeniedException/,
    );
    await expect(coldStart("arn:aws:secretsmanager:us-east-1:111122223333:secret:missing")).rejects.toThrow(
      /BOOTSTRAP_TOKEN_SECRET_ARN could not be read: ResourceNotFoundException/,
    );
  });

  it("retries a failed read at the next cold start instead of caching the failure", async () => {
    const secret = hex64();
    const arn = secrets.putSecret("flaky", secret);
    // The SDK retries a 5xx itself (three attempts in all), so the read fails only if all three do.
    secrets.failNext("InternalServiceError", 3);
    await expect(coldStart(arn)).rejects.toThrow(ConfigError);
    const { app } = await coldStart(arn);
    expect((await createTenant(app, bootstrapToken(secret)?.token ?? "", "bootstrap-d")).status).toBe(201);
  });

  it("stops the cold start when the secret is malformed, without echoing its value", async () => {
    const canary = `CANARY-${hex64()}`;
    const error = await coldStart(secrets.putSecret("malformed", canary)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe("BOOTSTRAP_TOKEN_SECRET_ARN");
    expect(String((error as Error).message)).not.toContain("CANARY");
  });
});
