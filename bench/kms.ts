import { KMSClient } from "@aws-sdk/client-kms";
import { KmsChainKeys } from "../shared/crypto/chain-keys.ts";
import { KmsKeyring } from "../shared/crypto/kms-keyring.ts";
import { DUMMY_CREDENTIALS } from "../testing/harness.ts";
import { initialKeyId, type KmsEndpoint, startKmsEndpoint } from "../testing/kms-endpoint.ts";
import { runLoad } from "./load.ts";
import { formatNumber, report, startStack, verdict } from "./support.ts";

const READS = 1000;
const WARMUP_REQUESTS = 300;
const CONCURRENCY = 32;
const TARGET_CALLS = 1;
const KEY_ALIAS = "alias/strongbox-bench";

const describeCalls = (calls: Record<string, number>) =>
  Object.entries(calls)
    .map(([operation, count]) => `${operation} ×${count}`)
    .join(", ") || "none";

/**
 * KMS calls per 1,000 warm reads. No KMS can run here, so the real KMS client talks to the loopback
 * KMS-protocol test endpoint, which counts what it is asked.
 */
export async function measureKmsCallsPerThousandReads(): Promise<void> {
  const kms: KmsEndpoint = await startKmsEndpoint({ aliases: { [KEY_ALIAS]: initialKeyId(1) } });
  const client = () =>
    new KMSClient({ endpoint: kms.endpoint, region: "us-east-1", credentials: DUMMY_CREDENTIALS });
  const macKeyArn = kms.createHmacKey();
  const newKeyring = () => new KmsKeyring({ client: client(), keyId: KEY_ALIAS });
  // Each instance derives its day's audit key with one GenerateMac, counted like every other call.
  const newChainKeys = () => new KmsChainKeys({ client: client(), keyId: macKeyArn });
  const stack = await startStack({ newKeyring, newChainKeys });
  try {
    const setupCalls = { ...kms.calls };
    kms.resetCalls();
    let warmupCalls: Record<string, number> = {};
    const result = await runLoad(
      {
        url: stack.serviceRead.url,
        headers: stack.serviceRead.headers,
        concurrency: CONCURRENCY,
        warmupRequests: WARMUP_REQUESTS,
        measure: { requests: READS },
      },
      () => {
        warmupCalls = { ...kms.calls };
        kms.resetCalls();
      },
    );
    if (result.failures > 0) {
      throw new Error(`${result.failures} KMS-keyring reads failed, e.g. ${result.failureSample}`);
    }
    const perThousand = (kms.totalCalls() / result.requests) * 1000;

    report.section(
      `3. KMS calls, service on KmsKeyring (${formatNumber(READS)} reads over HTTP after warm-up)`,
    );
    report.note("KMS is the loopback KMS-protocol test endpoint (testing/kms-endpoint.ts), real KMS client");
    report.note("set-up = seeding instance (create tenant, first write) + serving instance's first read");
    report.figure("KMS calls during set-up", describeCalls(setupCalls));
    report.figure(`KMS calls during ${WARMUP_REQUESTS} warm-up reads`, describeCalls(warmupCalls));
    report.figure(
      `KMS calls during the ${formatNumber(result.requests)} measured reads`,
      describeCalls(kms.calls),
    );
    report.figure(
      `KMS calls per 1,000 warm reads (target ≤ ${TARGET_CALLS})`,
      formatNumber(perThousand, 2),
      `calls, ${verdict(perThousand <= TARGET_CALLS)}`,
    );
  } finally {
    await stack.close();
    await kms.close();
  }
}
