import { describeVerification } from "../../shared/domain/audit-chain.ts";
import type { Env } from "../../shared/domain/env.ts";
import { keyringFor, openLocalStore } from "../local-store.ts";
import type { Output } from "../output.ts";

/** Walks chains in the local store; true when every one is intact. */
export async function verifyLocal(
  env: Env,
  out: Output,
  dataDir: string,
  requested: readonly string[],
): Promise<boolean> {
  const store = await openLocalStore(env, dataDir, keyringFor(env, dataDir));
  try {
    const verifier = store.runtime.chainVerifier;
    const scopes = requested.length > 0 ? requested : await verifier.scopes();
    const results = [];
    for (const scope of scopes) results.push(await verifier.verify(scope));
    if (out.json) out.write(JSON.stringify({ chains: results }, null, 2));
    else
      out.write(
        results.length === 0 ? "no audit chains in this store" : results.map(describeVerification).join("\n"),
      );
    return results.every((result) => result.intact);
  } finally {
    await store.close();
  }
}
