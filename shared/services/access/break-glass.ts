import {
  mintBreakGlassCredential,
  newBreakGlassId,
  parseBreakGlassCredential,
  tokenSecretMatches,
} from "../../crypto/tokens.ts";
import type { OperationGate } from "../../domain/audit-trail.ts";
import {
  type BreakGlassEvents,
  type BreakGlassRecord,
  type BreakGlassView,
  canonicalBreakGlass,
} from "../../domain/break-glass.ts";
import type { RequestContext } from "../../domain/context.ts";
import { AuthorizationError, ConflictError, NotFoundError } from "../../domain/errors.ts";
import type { ItemIntegrity } from "../../domain/item-integrity.ts";
import { now } from "../../domain/time.ts";
import type { Principal } from "../../domain/types.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { BreakGlassRepository } from "../../storage/break-glass-repository.ts";

export interface BreakGlassDependencies {
  readonly requests: BreakGlassRepository;
  readonly integrity: ItemIntegrity;
  readonly gate: OperationGate;
  readonly events: BreakGlassEvents;
  /** Whether a token id is a bootstrap admin token's, which may never approve. */
  readonly isBootstrap: (tokenId: string) => Promise<boolean>;
  readonly metrics: MetricsRecorder;
  readonly logger: Logger;
}

/** A write over a request that changed since it was read is tried again this often, on a fresh read. */
const CHANGED_ITEM_ATTEMPTS = 3;

/**
 * Break-glass (seed 002 §4.2). An operator asks for elevated access to one tenant, for at most 60
 * minutes, with a reason; a different admin, never a bootstrap admin token, approves; the requester
 * then activates it once and gets a credential that acts as an admin on that tenant alone, until the
 * deadline or a revoke. Every step, and every use of the credential, is recorded at high severity.
 */
export class BreakGlass {
  readonly #requests: BreakGlassRepository;
  readonly #integrity: ItemIntegrity;
  readonly #gate: OperationGate;
  readonly #events: BreakGlassEvents;
  readonly #isBootstrap: (tokenId: string) => Promise<boolean>;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;

  constructor(dependencies: BreakGlassDependencies) {
    this.#requests = dependencies.requests;
    this.#integrity = dependencies.integrity;
    this.#gate = dependencies.gate;
    this.#events = dependencies.events;
    this.#isBootstrap = dependencies.isBootstrap;
    this.#metrics = dependencies.metrics;
    this.#logger = dependencies.logger;
  }

  async request(
    ctx: RequestContext,
    tenantId: string,
    reason: string,
    durationMinutes: number,
  ): Promise<BreakGlassView> {
    const operation = await this.#gate.begin(ctx, "breakglass.request", { tenantId });
    return operation.change(
      async () => {
        const record: BreakGlassRecord = {
          id: newBreakGlassId(),
          tenantId,
          requester: ctx.principal.actor,
          reason,
          durationMinutes,
          status: "pending",
          createdAt: now(),
        };
        await this.#write(record);
        return viewOf(record);
      },
      (view) => ({ reason, detail: `break-glass ${view.id} for ${durationMinutes} min` }),
    );
  }

  async approve(ctx: RequestContext, tenantId: string, id: string): Promise<BreakGlassView> {
    const operation = await this.#gate.begin(ctx, "breakglass.approve", {
      tenantId,
      detail: `break-glass ${id}`,
    });
    return operation.change(() =>
      this.#update(tenantId, id, async (record) => {
        if (record.status !== "pending")
          throw new ConflictError(`break-glass ${id} is ${record.status}, not pending`);
        if (record.requester === ctx.principal.actor) {
          throw new AuthorizationError(
            "the requester of a break-glass cannot approve it; another admin must",
          );
        }
        // The bootstrap admin is the last resort, kept for when nobody else can act: it never approves.
        if (await this.#isBootstrap(ctx.principal.actor)) {
          throw new AuthorizationError(
            "a bootstrap admin token cannot approve a break-glass; use a named admin's token",
          );
        }
        const approvedAt = new Date();
        const next: BreakGlassRecord = {
          ...record,
          status: "approved",
          approver: ctx.principal.actor,
          approvedAt: approvedAt.toISOString(),
          expiresAt: new Date(approvedAt.getTime() + record.durationMinutes * 60_000).toISOString(),
        };
        return { next, result: viewOf(next) };
      }),
    );
  }

  /** Once, by the requester, while the approval is live: the credential, announced before it is handed out. */
  async activate(
    ctx: RequestContext,
    tenantId: string,
    id: string,
  ): Promise<{ credential: string; expiresAt: string; id: string }> {
    const operation = await this.#gate.begin(ctx, "breakglass.activate", {
      tenantId,
      detail: `break-glass ${id}`,
    });
    const activated = await operation.change(() =>
      this.#update(tenantId, id, async (record) => {
        if (record.requester !== ctx.principal.actor) {
          throw new AuthorizationError("only the requester of a break-glass may activate it");
        }
        if (record.status !== "approved" || record.expiresAt === undefined || !isBefore(record.expiresAt)) {
          throw new ConflictError(
            `break-glass ${id} is ${record.status === "approved" ? "past its deadline" : record.status}; it cannot be activated`,
          );
        }
        const minted = mintBreakGlassCredential(record.id);
        const next: BreakGlassRecord = { ...record, status: "active", credentialHash: minted.secretHash };
        // Announced before the credential exists; a retry after a re-key announces it again.
        await this.#events.activated({
          requestId: record.id,
          tenantId,
          requester: record.requester,
          approver: record.approver ?? "",
          expiresAt: record.expiresAt,
        });
        return { next, result: { id: record.id, credential: minted.token, expiresAt: record.expiresAt } };
      }),
    );
    this.#metrics.increment("BreakGlassActive");
    return activated;
  }

  async revoke(ctx: RequestContext, tenantId: string, id: string): Promise<BreakGlassView> {
    const operation = await this.#gate.begin(ctx, "breakglass.revoke", {
      tenantId,
      detail: `break-glass ${id}`,
    });
    return operation.change(() =>
      this.#update(tenantId, id, async (record) => {
        if (record.status === "revoked") return { result: viewOf(record) };
        const next: BreakGlassRecord = {
          ...record,
          status: "revoked",
          revokedAt: now(),
          revokedBy: ctx.principal.actor,
        };
        return { next, result: viewOf(next) };
      }),
    );
  }

  /**
   * The principal an `sbg_` credential stands for, or undefined: an admin on its one tenant, only while
   * its record is active, verified and before its deadline. Each use counts in `BreakGlassActive`.
   */
  async authenticate(token: string): Promise<Principal | undefined> {
    const parsed = parseBreakGlassCredential(token);
    if (parsed === undefined) return undefined;
    const found = await this.#verified(parsed.requestId);
    const record = found?.record;
    if (
      record === undefined ||
      record.status !== "active" ||
      record.credentialHash === undefined ||
      record.expiresAt === undefined ||
      !isBefore(record.expiresAt) ||
      !tokenSecretMatches(parsed.secret, record.credentialHash)
    ) {
      return undefined;
    }
    this.#metrics.increment("BreakGlassActive");
    return { actor: `bg:${record.id}`, role: "admin", tenants: [record.tenantId], breakGlass: record.id };
  }

  async #find(tenantId: string, id: string): Promise<{ record: BreakGlassRecord; mac: string }> {
    const found = await this.#verified(id);
    // A request of another tenant is no request of this one: nothing tells the caller it exists.
    if (found === undefined || found.record.tenantId !== tenantId) {
      throw new NotFoundError(`no break-glass ${id} for tenant ${tenantId}`);
    }
    return found;
  }

  async #verified(id: string): Promise<{ record: BreakGlassRecord; mac: string } | undefined> {
    const stored = await this.#requests.get(id);
    if (stored === undefined) return undefined;
    const { record, seal } = stored;
    if (
      record !== undefined &&
      seal !== undefined &&
      record.id === id &&
      (await this.#integrity.verify(canonicalBreakGlass(record), seal))
    ) {
      return { record, mac: seal.mac };
    }
    this.#metrics.increment("IntegrityFailures");
    this.#logger.warn("break-glass item failed its integrity check; refused as unknown", {
      breakGlassId: id,
    });
    return undefined;
  }

  /**
   * A change to a request, made over the item as verified. A write that finds the item changed reads
   * it again and decides again: a KEK re-wrap re-keying it gives it a new MAC over the same content,
   * which must not answer 409; a real change (another approval, a revoke) is then what the checks see.
   */
  async #update<T>(
    tenantId: string,
    id: string,
    decide: (record: BreakGlassRecord) => Promise<{ next?: BreakGlassRecord; result: T }>,
  ): Promise<T> {
    for (let attempt = 0; attempt < CHANGED_ITEM_ATTEMPTS; attempt += 1) {
      const { record, mac } = await this.#find(tenantId, id);
      const { next, result } = await decide(record);
      if (next === undefined) return result;
      const seal = await this.#integrity.seal(canonicalBreakGlass(next));
      if (await this.#requests.put(next, seal, mac)) return result;
    }
    throw new ConflictError(`break-glass ${id} kept changing meanwhile; read it and retry`);
  }

  async #write(record: BreakGlassRecord): Promise<void> {
    const seal = await this.#integrity.seal(canonicalBreakGlass(record));
    if (!(await this.#requests.put(record, seal))) {
      throw new ConflictError(`break-glass ${record.id} exists already; retry`);
    }
  }
}

const isBefore = (deadline: string) => {
  const at = Date.parse(deadline);
  return Number.isFinite(at) && Date.now() < at;
};

function viewOf(record: BreakGlassRecord): BreakGlassView {
  const { credentialHash: _hash, ...view } = record;
  return view;
}
