import { envelopeDekVersion } from "../../crypto/envelope.ts";
import type { SecretRepository } from "../../storage/secret-repository.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";

/** Adds to a count kept by key, as the sweep, the re-wrap and the reports keep them. */
export const tally = (counts: Record<string, number>, key: string | number, by = 1) => {
  counts[String(key)] = (counts[String(key)] ?? 0) + by;
};

/** Ciphertexts per DEK version of one tenant, current and pending values and archived versions alike. */
export async function ciphertextsByDekVersion(
  secrets: SecretRepository,
  tenantId: string,
): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let after: string | undefined;
  do {
    const page = await secrets.scanSealed(tenantId, after, 500);
    for (const item of page.items) {
      for (const sealed of [item.current, item.pending]) {
        if (sealed !== undefined) tally(counts, envelopeDekVersion(sealed.envelope));
      }
    }
    after = page.last;
  } while (after !== undefined);
  return counts;
}

/**
 * DEKs per KEK id over every tenant in the directory, counted live. Refused (503
 * `directory_backfill_pending`) while the directory may still miss tenants: a count that skipped some
 * would let the re-wrap forget a KEK they depend on.
 */
export async function dataKeysByKek(tenants: TenantRepository): Promise<Record<string, number>> {
  await tenants.requireDirectory();
  const counts: Record<string, number> = {};
  let after: string | undefined;
  do {
    const page = await tenants.scan(after, 200);
    for (const tenant of page.tenants) for (const key of tenant.dataKeys) tally(counts, key.kekId);
    after = page.last;
  } while (after !== undefined);
  return counts;
}
