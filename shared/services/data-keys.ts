import type { DataKeyCache } from "../crypto/data-key-cache.ts";
import type { Keyring } from "../crypto/keyring.ts";
import { DecryptError } from "../domain/errors.ts";
import type { Tenant, WrappedDataKey } from "../domain/types.ts";
import type { TenantRepository } from "../storage/tenant-repository.ts";
import { now } from "./context.ts";

/** Tenant data keys: generated wrapped, stored wrapped, and unwrapped only into the bounded cache. */
export class DataKeys {
  constructor(
    private readonly keyring: Keyring,
    private readonly tenants: TenantRepository,
    private readonly cache: DataKeyCache,
  ) {}

  /** DEK v1 of a new tenant; only the wrapped form is returned, for storing. */
  async generateFirst(tenantId: string): Promise<WrappedDataKey> {
    const version = 1;
    const generated = await this.keyring.generateDataKey({ tenantId, dekVersion: version });
    // Registered by the id the keeper reports (a KMS key ARN, not an alias), before the tenant exists.
    await this.tenants.registerKek(generated.wrapped.kekId);
    return {
      version,
      kekId: generated.wrapped.kekId,
      ciphertext: generated.wrapped.ciphertext,
      createdAt: now(),
    };
  }

  /** The plaintext DEK of one version, for sealing or opening. */
  async unwrapped(tenantId: string, version: number, tenant?: Tenant): Promise<Uint8Array> {
    return this.cache.get(`${tenantId}#${version}`, async () => {
      const owner = tenant ?? (await this.tenants.get(tenantId));
      const wrapped = owner?.dataKeys.find((key) => key.version === version);
      if (wrapped === undefined) {
        // Ciphertext or a tenant record naming a DEK that does not exist has been altered or misplaced.
        throw new DecryptError(`tenant ${tenantId} has no DEK v${version}`);
      }
      return this.keyring.unwrap(wrapped, { tenantId, dekVersion: version });
    });
  }
}
