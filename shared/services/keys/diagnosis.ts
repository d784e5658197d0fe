import type { Keyring } from "../../crypto/keyring.ts";
import { StrongboxError } from "../../domain/errors.ts";
import type { SecretSealer } from "../../domain/sealing.ts";
import type { SecretRepository } from "../../storage/secret-repository.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";
import { ciphertextsByDekVersion, dataKeysByKek } from "./census.ts";

/** Which KEKs the table depends on, set against the ones this process holds. */
export interface KekCoverage {
  readonly activeKekId: string;
  readonly configured: readonly string[];
  /** DEKs per KEK id over every tenant; undefined while the tenant directory is incomplete. */
  readonly dataKeysByKek?: Readonly<Record<string, number>>;
  /** KEKs the registry says the table may depend on (a re-wrap in flight keeps the old one there). */
  readonly registered: readonly string[];
  /** KEKs the table depends on that this process cannot unwrap with. */
  readonly missing: readonly string[];
}

export interface TenantKeyState {
  readonly tenantId: string;
  readonly currentDekVersion: number;
  readonly dataKeys: readonly {
    readonly version: number;
    readonly kekId: string;
    /** Unwrapped under the configured KEKs, or the reason it did not. */
    readonly unwraps: true | string;
  }[];
  readonly ciphertextsByDekVersion: Readonly<Record<string, number>>;
}

export interface OpenedCiphertexts {
  readonly secrets: number;
  readonly ciphertexts: number;
  readonly failures: readonly { readonly name: string; readonly version: number; readonly reason: string }[];
}

/**
 * Answers the runbooks' first questions offline (`strongbox doctor`): does the configured KEK cover
 * what the table holds, and can a tenant's DEKs be opened? Read-only: it records nothing and changes
 * nothing, so it can run against a table whose KEK is the very thing that is wrong.
 */
export class KeyDiagnosis {
  readonly #keyring: Keyring;
  readonly #tenants: TenantRepository;
  readonly #secrets: SecretRepository;
  readonly #sealer: SecretSealer;

  constructor(keyring: Keyring, tenants: TenantRepository, secrets: SecretRepository, sealer: SecretSealer) {
    this.#keyring = keyring;
    this.#tenants = tenants;
    this.#secrets = secrets;
    this.#sealer = sealer;
  }

  /** Tenant ids in key order, for a drill that samples some of them. */
  async tenantIds(limit: number): Promise<string[]> {
    return (await this.#tenants.listIds(undefined, limit)).tenantIds;
  }

  /**
   * Opens every ciphertext of a tenant (current, pending and archived versions, soft-deleted names
   * too) and throws each plaintext away: what a restore drill proves. Failures name the secret and
   * the version, never a value.
   */
  async openEverything(tenantId: string): Promise<OpenedCiphertexts> {
    const names = new Set<string>();
    let ciphertexts = 0;
    const failures: { name: string; version: number; reason: string }[] = [];
    let after: string | undefined;
    do {
      const page = await this.#secrets.scanSealed(tenantId, after, 200);
      for (const item of page.items) {
        names.add(item.name);
        for (const sealed of [item.current, item.pending]) {
          if (sealed === undefined) continue;
          ciphertexts += 1;
          try {
            await this.#sealer.open(tenantId, item.name, sealed);
          } catch (error) {
            const reason = error instanceof StrongboxError ? error.message : "it could not be opened";
            failures.push({ name: item.name, version: sealed.version, reason });
          }
        }
      }
      after = page.last;
    } while (after !== undefined);
    return { secrets: names.size, ciphertexts, failures };
  }

  async coverage(): Promise<KekCoverage> {
    const configured = this.#keyring.kekIds;
    const registered = await this.#tenants.registeredKeks();
    const complete = await this.#tenants.directoryComplete();
    const counts = complete ? await dataKeysByKek(this.#tenants) : undefined;
    const needed = new Set([...registered, ...Object.keys(counts ?? {})]);
    return {
      activeKekId: this.#keyring.activeKekId,
      configured,
      ...(counts === undefined ? {} : { dataKeysByKek: counts }),
      registered,
      missing: [...needed].filter((kekId) => !configured.includes(kekId)),
    };
  }

  async tenant(tenantId: string): Promise<TenantKeyState | undefined> {
    const tenant = await this.#tenants.get(tenantId);
    if (tenant === undefined) return undefined;
    const dataKeys: TenantKeyState["dataKeys"][number][] = [];
    for (const wrapped of tenant.dataKeys) {
      let unwraps: true | string = true;
      try {
        await this.#keyring.unwrap(wrapped, { tenantId, dekVersion: wrapped.version });
      } catch (error) {
        unwraps = error instanceof StrongboxError ? error.message : "it could not be unwrapped";
      }
      dataKeys.push({ version: wrapped.version, kekId: wrapped.kekId, unwraps });
    }
    return {
      tenantId,
      currentDekVersion: tenant.currentDekVersion,
      dataKeys,
      ciphertextsByDekVersion: await ciphertextsByDekVersion(this.#secrets, tenantId),
    };
  }
}
