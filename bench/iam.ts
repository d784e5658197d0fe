import { startHarness } from "../testing/harness.ts";
import { httpApiEvent, IAM_ACCOUNT, iamApiEvent } from "../testing/http-api-event.ts";
import { lambdaCaller } from "../testing/lambda-call.ts";
import { percentile } from "./load.ts";
import { countDynamoCalls, discardingLogger, formatNumber, report } from "./support.ts";

const READS = 1000;
const WARMUP = 100;
const PATH = "/v1/tenants/acme/secrets/db-password";

/**
 * What an IAM caller's warm read costs beside a bearer token's: the same secret read, one at a time,
 * through Hono's Lambda adapter in this process (the event path of the API function), against
 * in-memory dynalite. The binding lookup takes the token lookup's place, so both should make the
 * same DynamoDB calls; API Gateway's own SigV4 check happens before the function and is not here.
 */
export async function measureIamReads(): Promise<void> {
  const h = await startHarness({ logger: discardingLogger() });
  try {
    const admin = await h.token("admin");
    await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } });
    await h.call("PUT", PATH, { token: admin, body: { value: "bench value" } });
    const runner = await h.token("runner", ["acme"]);
    const bound = await h.call("POST", "/v1/bindings", {
      token: admin,
      body: {
        principalArn: `arn:aws:iam::${IAM_ACCOUNT}:role/bench-reader`,
        role: "runner",
        tenants: ["acme"],
      },
    });
    if (bound.status !== 201) throw new Error(`binding failed: ${bound.status}`);
    const call = lambdaCaller(h.app);
    const headers = { "x-audit-reason": "bench" };
    const events = {
      bearer: () => httpApiEvent("GET", PATH, { headers: { ...headers, authorization: `Bearer ${runner}` } }),
      iam: () =>
        iamApiEvent("GET", `/iam${PATH}`, `arn:aws:sts::${IAM_ACCOUNT}:assumed-role/bench-reader/bench`, {
          headers,
        }),
    };
    const counter = countDynamoCalls(h.table);
    report.section(
      `IAM callers: ${formatNumber(READS)} warm reads each, one at a time, through the Lambda adapter`,
    );
    for (const [label, event] of Object.entries(events)) {
      for (let n = 0; n < WARMUP; n++) await call(event());
      counter.reset();
      const times: number[] = [];
      for (let n = 0; n < READS; n++) {
        const started = performance.now();
        const response = await call(event());
        times.push(performance.now() - started);
        if (response.status !== 200) throw new Error(`${label} read answered ${response.status}`);
      }
      times.sort((a, b) => a - b);
      report.figure(`${label}: p50 latency`, formatNumber(percentile(times, 50), 2), "ms");
      report.figure(`${label}: p99 latency`, formatNumber(percentile(times, 99), 2), "ms");
      report.figure(`${label}: DynamoDB calls`, formatNumber(counter.total() / READS, 2), "calls/read");
    }
  } finally {
    await h.close();
  }
}
