import type { DataKeyCache } from "../../crypto/data-key-cache.ts";
import type { Keyring } from "../../crypto/keyring.ts";
import { DecryptError, DekRetiredError, NotFoundError, TenantDeletedError } from "../../domain/errors.ts";
import type { DataKeyForgetter, DataKeyIssuer } from "../../domain/sealing.ts";
import { now } from "../../domain/time.ts";
import type { Tenant, WrappedDataKey } from "../../domain/types.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";

/**
 * Writers of a tenant item (a DEK rotation, a retirement, a re-wrap) re-read it and try again this many
 * times when another writer's conditional write got in first.
 */
export const MAX_TENANT_WRITE_ATTEMPTS = 5;

/** The DEK new ciphertext is sealed under, with when (performance.now(), monotonic) the tenant item naming it was read. */
export interface CurrentDataKey {
  readonly version: number;
  readonly key: Uint8Array;
  readonly readAtMs: number;
  /** Seals counted under this DEK, the ones just reserved included. */
  readonly seals: number;
}

/** Tenant data keys: generated wrapped, stored wrapped, and unwrapped only into the bounded cache. */
export class DataKeys implements DataKeyIssuer, DataKeyForgetter {
  readonly #keyring: Keyring;
  readonly #tenants: TenantRepository;
  readonly #cache: DataKeyCache;

  constructor(keyring: Keyring, tenants: TenantRepository, cache: DataKeyCache) {
    this.#keyring = keyring;
    this.#tenants = tenants;
    this.#cache = cache;
  }

  /** DEK v1 of a new tenant; only the wrapped form is returned, for storing. */
  async generateFirst(tenantId: string): Promise<WrappedDataKey> {
    return this.generate(tenantId, 1);
  }

  /** A new DEK version, wrapped under the active KEK, whose KEK is registered before it is returned. */
  async generate(tenantId: string, version: number): Promise<WrappedDataKey> {
    const generated = await this.#keyring.generateDataKey({ tenantId, dekVersion: version });
    // Registered by the id the keeper reports (a KMS key ARN, not an alias), before the tenant exists.
    await this.#tenants.registerKek(generated.wrapped.kekId);
    return {
      version,
      kekId: generated.wrapped.kekId,
      ciphertext: generated.wrapped.ciphertext,
      createdAt: now(),
    };
  }

  /**
   * The tenant's current DEK, read fresh from the tenant item by the same call that counts `seals`
   * more under it, so the count is never behind what was sealed.
   */
  async current(tenantId: string, seals: number): Promise<CurrentDataKey> {
    const readAtMs = performance.now();
    const tenant = await this.#tenants.reserveSeals(tenantId, seals);
    if (tenant === undefined) throw new NotFoundError(`tenant ${tenantId} does not exist`);
    if (tenant.deletedAt !== undefined) throw deleted(tenantId);
    const version = tenant.currentDekVersion;
    return {
      version,
      key: await this.unwrapped(tenantId, version, tenant),
      readAtMs,
      seals: tenant.dekSeals ?? 0,
    };
  }

  /** The plaintext DEK of one version, for sealing or opening. */
  async unwrapped(tenantId: string, version: number, tenant?: Tenant): Promise<Uint8Array> {
    return this.#cache.get(`${tenantId}#${version}`, async () => {
      const owner = tenant ?? (await this.#tenants.get(tenantId));
      if (owner?.deletedAt !== undefined) throw deleted(tenantId);
      const wrapped = owner?.dataKeys.find((key) => key.version === version);
      if (wrapped === undefined) {
        if (owner?.retiredDataKeys?.some((key) => key.version === version)) {
          throw new DekRetiredError(`tenant ${tenantId}'s DEK v${version} has been retired`);
        }
        // Ciphertext or a tenant record naming a DEK that does not exist has been altered or misplaced.
        throw new DecryptError(`tenant ${tenantId} has no DEK v${version}`);
      }
      return this.#keyring.unwrap(wrapped, { tenantId, dekVersion: version });
    });
  }

  /** Drops retired versions from memory too, once their wrapped form is gone from the table. */
  forget(tenantId: string, version: number): void {
    this.#cache.evict(`${tenantId}#${version}`);
  }
}

const deleted = (tenantId: string) => new TenantDeletedError(`tenant ${tenantId} was deleted`);
