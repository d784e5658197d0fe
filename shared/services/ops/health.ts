import type { Keyring } from "../../crypto/keyring.ts";
import type { ChainHeads } from "../../domain/audit-chain.ts";
import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import type { GlobalSealState } from "../../domain/seal.ts";
import { SYSTEM_SCOPE } from "../../domain/types.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";

export interface HealthReport {
  readonly healthy: boolean;
  readonly keyring: {
    readonly kind: Keyring["kind"];
    readonly activeKekId: string;
    readonly status: "ok" | "unavailable";
  };
  readonly store: { readonly status: "ok" | "unavailable" };
  /**
   * The system chain's head, read from the store, and how many chains this instance has appended to.
   * Only for admins (`GET /v1/health`); tenants' heads are behind `GET /v1/tenants/{tenantId}/audit/head`.
   */
  readonly audit: {
    readonly heads: readonly { scope: string; sequence: number; hash: string }[];
    readonly knownChains: number;
  };
  /** Whether the kill switch has sealed every tenant (`POST /v1/seal`); absent where it was not read. */
  readonly sealed?: boolean;
  /** Why the service is not usable, in operator terms; empty when healthy. */
  readonly problems: readonly string[];
  /** What an operator should act on although the service works, such as an unfinished KEK re-wrap. */
  readonly warnings: readonly string[];
}

/**
 * Whether the KEK and the store are usable together. A table holding DEKs wrapped by a KEK that is
 * not configured is unhealthy: those tenants' secrets cannot be read, and the fingerprint says why.
 */
export class HealthService {
  readonly #keyring: Keyring;
  readonly #tenants: TenantRepository;
  readonly #chain: ChainHeads;
  readonly #gate: OperationGate;
  readonly #seal: GlobalSealState | undefined;

  constructor(
    keyring: Keyring,
    tenants: TenantRepository,
    chain: ChainHeads,
    gate: OperationGate,
    seal?: GlobalSealState,
  ) {
    this.#keyring = keyring;
    this.#tenants = tenants;
    this.#chain = chain;
    this.#gate = gate;
    this.#seal = seal;
  }

  /** Is everything sealed? Undefined when the seal cannot be read (the store's problem says why). */
  async globallySealed(): Promise<boolean | undefined> {
    return this.#seal?.globallySealed().catch(() => undefined);
  }

  /** The whole report for an admin: it names the KEK and the system chain's head, so it is no public probe. */
  async details(ctx: RequestContext): Promise<HealthReport> {
    const operation = await this.#gate.begin(ctx, "health.read");
    const report = await this.check();
    await operation.succeeded();
    return report;
  }

  async check(): Promise<HealthReport> {
    const keys = await this.assess();
    // From memory when this instance appended to it, so an anonymous probe usually costs no read.
    const systemHead =
      this.#chain.knownHead(SYSTEM_SCOPE) ??
      (await this.#chain.storedHead(SYSTEM_SCOPE).catch(() => undefined));
    const heads = systemHead === undefined ? [] : [{ scope: SYSTEM_SCOPE, ...systemHead }];
    const sealed = await this.globallySealed();
    if (sealed === true) {
      keys.warnings.push("every tenant is sealed (global seal); POST /v1/unseal lifts it");
    }
    return {
      healthy: keys.problems.length === 0,
      keyring: {
        kind: this.#keyring.kind,
        activeKekId: this.#keyring.activeKekId,
        status: keys.keyringAvailable ? "ok" : "unavailable",
      },
      store: { status: keys.storeAvailable ? "ok" : "unavailable" },
      audit: { heads, knownChains: this.#chain.knownChainCount() },
      ...(sealed === undefined ? {} : { sealed }),
      problems: keys.problems,
      warnings: keys.warnings,
    };
  }

  /**
   * The KEK and the store only, without the audit part of the report: what the start-up check needs,
   * so a cold start reads no chain head. `kekConfigured` is what `KekConfigured` records at start-up:
   * the keyring answers and every KEK the table registers is configured; an unreachable table alone
   * is a problem too, but says nothing about the KEK.
   */
  async assess(): Promise<{
    readonly problems: readonly string[];
    readonly warnings: string[];
    readonly keyringAvailable: boolean;
    readonly storeAvailable: boolean;
    readonly kekConfigured: boolean;
  }> {
    const problems: string[] = [];
    const warnings: string[] = [];
    const configured = await this.#keyring.probe().catch(() => {
      problems.push(`the ${this.#keyring.kind} keyring is unavailable`);
      return undefined;
    });
    const registered = await this.#tenants.registeredKeks().catch(() => {
      problems.push("the DynamoDB table is unavailable");
      return undefined;
    });
    let missing: string[] = [];
    if (configured !== undefined && registered !== undefined) {
      missing = registered.filter((kekId) => !configured.includes(kekId));
      if (missing.length > 0) {
        problems.push(
          `DEKs in this table were wrapped by KEK ${missing.join(", ")}; configured KEKs: ${configured.join(", ")}`,
        );
      }
      // probe() names the active KEK first, as stored DEKs name it.
      const previousOnly = registered.filter(
        (kekId) => configured.includes(kekId) && kekId !== configured[0],
      );
      for (const kekId of previousOnly) {
        warnings.push(
          `DEKs still depend on KEK ${kekId}, which is configured only as a previous key; ` +
            "run POST /v1/kek/rewrap and keep it configured until GET /v1/kek says it may be removed",
        );
      }
    }
    return {
      problems,
      warnings,
      keyringAvailable: configured !== undefined,
      storeAvailable: registered !== undefined,
      kekConfigured: configured !== undefined && missing.length === 0,
    };
  }
}
