import type { KekReport } from "../shared/domain/rotation.ts";
import { BackgroundRewrap } from "../shared/services/ops/background-rewrap.ts";
import type { ApiResponse, Harness } from "./harness.ts";

/**
 * `POST /v1/kek/rewrap` answers 202 and the work goes on in the background, so a test that needs it
 * finished waits for it. In a harness the worker is in this process: once it has settled, `GET
 * /v1/kek` tells how the re-wrap ended, with no polling. Answers that report, done or not.
 */
export async function rewrapSettled(h: Harness, token: string): Promise<KekReport> {
  await backgroundRewrapSettled(h);
  const response = await h.call("GET", "/v1/kek", { token });
  if (response.status !== 200) throw new Error(`GET /v1/kek answered ${response.status}: ${response.text}`);
  return response.json();
}

/** Resolves once the harness's in-process re-wrap worker has nothing left to do. */
export async function backgroundRewrapSettled(h: Harness): Promise<void> {
  const dispatch = h.runtime.rewrapDispatch;
  if (!(dispatch instanceof BackgroundRewrap))
    throw new Error("this harness hands re-wraps to another process");
  await dispatch.settled();
}

/** `POST /v1/kek/rewrap`, checked for its 202, then the report once the worker has settled. */
export async function rewrapAndSettle(h: Harness, token: string): Promise<KekReport> {
  const accepted = await h.call("POST", "/v1/kek/rewrap", { token });
  if (accepted.status !== 202)
    throw new Error(`POST /v1/kek/rewrap answered ${accepted.status}: ${accepted.text}`);
  return rewrapSettled(h, token);
}

/**
 * For a re-wrap in another process (`npm start`, a bundled function): asks `GET /v1/kek` until the
 * re-wrap is done, a bounded number of times; throws with the last report otherwise.
 */
export async function pollUntilRewrapDone(
  getReport: () => Promise<ApiResponse>,
  options: { readonly attempts?: number; readonly intervalMs?: number } = {},
): Promise<KekReport> {
  const attempts = options.attempts ?? 100;
  let last = "";
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    const response = await getReport();
    last = response.text;
    if (response.status === 200 && (await response.json()).rewrap?.phase === "done") return response.json();
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
  throw new Error(`the re-wrap did not finish: ${last.slice(0, 2000)}`);
}
