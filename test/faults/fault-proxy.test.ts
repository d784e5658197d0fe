import {
  DescribeTableCommand,
  DynamoDBClient,
  ProvisionedThroughputExceededException,
} from "@aws-sdk/client-dynamodb";
import { DescribeKeyCommand, KMSClient, KMSInternalException } from "@aws-sdk/client-kms";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FaultProxy, startFaultProxy } from "../../testing/fault-proxy.ts";
import { DUMMY_CREDENTIALS, startStore } from "../../testing/harness.ts";
import { initialKeyId, type KmsEndpoint, startKmsEndpoint } from "../../testing/kms-endpoint.ts";

// The proxy's faults must look to the real SDK clients as AWS's own do: the SDK parses each error into
// its modelled exception and retries it (three attempts), or times the request out.
let store: Awaited<ReturnType<typeof startStore>>;
let kms: KmsEndpoint;
let dynamoProxy: FaultProxy;
let kmsProxy: FaultProxy;
const options = { region: "us-east-1", credentials: DUMMY_CREDENTIALS, maxAttempts: 3 };
const timeouts = { requestHandler: { requestTimeout: 300, throwOnRequestTimeout: true } };

beforeAll(async () => {
  store = await startStore();
  kms = await startKmsEndpoint();
  dynamoProxy = await startFaultProxy(store.dynamo.endpoint);
  kmsProxy = await startFaultProxy(kms.endpoint);
});
afterAll(async () => {
  await Promise.all([dynamoProxy.close(), kmsProxy.close()]);
  await Promise.all([store.dynamo.close(), kms.close()]);
});

const dynamo = () => new DynamoDBClient({ ...options, ...timeouts, endpoint: dynamoProxy.endpoint });
const kmsClient = () => new KMSClient({ ...options, ...timeouts, endpoint: kmsProxy.endpoint });
const describeTable = () => dynamo().send(new DescribeTableCommand({ TableName: store.table.name }));
const describeKey = () => kmsClient().send(new DescribeKeyCommand({ KeyId: initialKeyId(1) }));

async function failure(call: () => Promise<unknown>): Promise<any> {
  try {
    await call();
  } catch (error) {
    return error;
  }
  throw new Error("the call succeeded");
}

describe("the fault proxy, as the SDK sees it", () => {
  it("passes requests through untouched, and counts them by operation", async () => {
    dynamoProxy.resetCalls();
    expect((await describeTable()).Table?.TableName).toBe(store.table.name);
    expect((await describeKey()).KeyMetadata?.KeyId).toBe(initialKeyId(1));
    expect(dynamoProxy.calls).toEqual({ DescribeTable: 1 });
  });

  it("DynamoDB's ProvisionedThroughputExceededException: the modelled exception, retried to the limit", async () => {
    const armed = dynamoProxy.inject({
      operations: ["DescribeTable"],
      fault: { kind: "throttle", error: "ProvisionedThroughputExceededException" },
    });
    const error = await failure(describeTable);
    armed.remove();
    expect(error).toBeInstanceOf(ProvisionedThroughputExceededException);
    expect(error.$metadata).toMatchObject({ httpStatusCode: 400, attempts: 3 });
    expect(armed.fired).toBe(3);
  });

  it("ThrottlingException, from DynamoDB and from KMS: named as AWS names it, retried", async () => {
    const fault = { kind: "throttle", error: "ThrottlingException" } as const;
    const onDynamo = dynamoProxy.inject({ fault, count: 2 });
    expect((await describeTable()).Table).toBeDefined();
    onDynamo.remove();
    expect(onDynamo.fired).toBe(2);
    const onKms = kmsProxy.inject({ fault });
    const error = await failure(describeKey);
    onKms.remove();
    expect(error.name).toBe("ThrottlingException");
    expect(error.$metadata).toMatchObject({ httpStatusCode: 400, attempts: 3 });
  });

  it("a 500 is the service's internal error, retried", async () => {
    const armed = kmsProxy.inject({ fault: { kind: "server-error" } });
    const error = await failure(describeKey);
    armed.remove();
    expect(error).toBeInstanceOf(KMSInternalException);
    expect(error.$metadata).toMatchObject({ httpStatusCode: 500, attempts: 3 });
    const once = dynamoProxy.inject({ fault: { kind: "server-error" }, count: 1 });
    expect((await describeTable()).Table).toBeDefined();
    expect(once.fired).toBe(1);
  });

  it("a hang lasts until the client's timeout, which the SDK retries; a dropped answer too", async () => {
    const hang = dynamoProxy.inject({ fault: { kind: "hang" } });
    const error = await failure(describeTable);
    hang.remove();
    expect(error.name).toBe("TimeoutError");
    expect(hang.fired).toBe(3);
    const drop = kmsProxy.inject({ fault: { kind: "drop-after-commit" }, count: 2 });
    expect((await describeKey()).KeyMetadata).toBeDefined();
    expect(drop.fired).toBe(2);
  });

  it("fires only on the requests chosen: after, count and probability", async () => {
    const armed = dynamoProxy.inject({ fault: { kind: "server-error" }, after: 1, count: 1 });
    dynamoProxy.resetCalls();
    await describeTable();
    await describeTable();
    armed.remove();
    expect(armed.fired).toBe(1);
    expect(dynamoProxy.calls).toEqual({ DescribeTable: 3 });
    const never = dynamoProxy.inject({ fault: { kind: "server-error" }, probability: 0 });
    await describeTable();
    never.remove();
    expect(never.fired).toBe(0);
  });
});
