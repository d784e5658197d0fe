import { ProblemFound } from "../errors.ts";
import type { Output } from "../output.ts";
import type { Remote } from "../remote.ts";

/**
 * Seed 001's smoke test: a throwaway secret written, read back and removed again. The value is
 * random and never printed; the read must give back exactly what was written.
 */
export async function smoke(remote: Remote, out: Output, tenant: string): Promise<void> {
  // The Web Crypto global (a CSPRNG): node:crypto is imported only in shared/crypto.
  const name = `strongbox-smoke-${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
  const value = Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("base64url");
  const started = performance.now();
  const written = await remote.client.putSecret(tenant, name, { value });
  try {
    const read = await remote.client.getSecret(tenant, name, { reason: "strongbox smoke test" });
    if (read.value !== value || read.version !== written.version) {
      throw new ProblemFound(
        `${tenant}/${name}: the value read back is not the one written`,
        "run strongbox doctor against the service",
      );
    }
  } finally {
    // Purge, not delete: a soft delete would leave the throwaway value's ciphertext behind.
    await remote.operator.purgeSecret(tenant, name);
  }
  const ms = Math.round(performance.now() - started);
  const result = { tenant, secret: name, wrote: written.version, readBack: true, removed: true, ms };
  out.write(
    out.json
      ? JSON.stringify(result)
      : `smoke test passed on ${tenant}: wrote, read back and removed ${name} in ${ms} ms`,
  );
}
