import { bindingIdFor } from "../../crypto/binding-id.ts";
import type { AuditTarget, DenialRecorder, OperationGate } from "../../domain/audit-trail.ts";
import type { IamIdentity, RequestContext } from "../../domain/context.ts";
import {
  AuthenticationError,
  AuthorizationError,
  ConflictError,
  NotFoundError,
  ValidationError,
} from "../../domain/errors.ts";
import { canonicalBinding, type ItemIntegrity, type ItemSeal } from "../../domain/item-integrity.ts";
import { bindableKey, callerKey, keyString } from "../../domain/principal-arn.ts";
import type { CreateBindingInput } from "../../domain/schemas.ts";
import { now } from "../../domain/time.ts";
import type { BindingRecord, BindingView, Page, Principal } from "../../domain/types.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { BindingRepository, StoredBinding } from "../../storage/binding-repository.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";

/** A binding item as it may be trusted: its fields and the seal that verified over them. */
interface VerifiedBinding {
  readonly record: BindingRecord;
  readonly seal: ItemSeal;
}

/** What a lookup found: a verified binding (live or deleted), nothing, or an item that failed its check. */
type Lookup = VerifiedBinding | "absent" | { readonly failed: StoredBinding };

export interface BindingServiceDependencies {
  readonly bindings: BindingRepository;
  /** To refuse a binding for a tenant that does not exist, as token creation does. */
  readonly tenants: TenantRepository;
  readonly integrity: ItemIntegrity;
  readonly gate: OperationGate;
  readonly denials: DenialRecorder;
  readonly metrics: MetricsRecorder;
  readonly logger: Logger;
}

/** A write over an item that changed since it was read is tried again this often, on a fresh read. */
const CHANGED_ITEM_ATTEMPTS = 3;

/**
 * Bindings map an IAM principal, verified by API Gateway's IAM authorization, to a role and tenants.
 * They are authority-bearing items like tokens: sealed with the item MAC, and an item that fails its
 * check grants nothing, is counted in IntegrityFailures and is logged by its id only.
 */
export class BindingService {
  readonly #bindings: BindingRepository;
  readonly #tenants: TenantRepository;
  readonly #integrity: ItemIntegrity;
  readonly #gate: OperationGate;
  readonly #denials: DenialRecorder;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;

  constructor(dependencies: BindingServiceDependencies) {
    this.#bindings = dependencies.bindings;
    this.#tenants = dependencies.tenants;
    this.#integrity = dependencies.integrity;
    this.#gate = dependencies.gate;
    this.#denials = dependencies.denials;
    this.#metrics = dependencies.metrics;
    this.#logger = dependencies.logger;
  }

  /** One binding per principal: a second is a 409 until the first is deleted. */
  async create(ctx: RequestContext, input: CreateBindingInput): Promise<BindingView> {
    const { principalArn, role, tenants } = input;
    const key = bindableKey(principalArn);
    if (key === undefined) throw new ValidationError("body.principalArn: not an IAM role or user ARN");
    const bindingId = bindingIdFor(keyString(key));
    const operation = await this.#gate.begin(ctx, "binding.create", {
      detail: `bind ${principalArn} as ${role} for ${tenants.join(",")}`,
    });
    return operation.change(
      async () => {
        await this.#requireTenants(tenants);
        const found = await this.#lookup(bindingId);
        if (isVerified(found) && found.record.deletedAt === undefined) {
          throw new ConflictError(`binding ${bindingId} already binds this principal; delete it first`);
        }
        // A deleted binding, or an item that failed its check, is replaced, but only as it was read.
        const replacing = isVerified(found)
          ? { mac: found.seal.mac }
          : found === "absent"
            ? undefined
            : { mac: found.failed.seal?.mac };
        const record: BindingRecord = { bindingId, principalArn, role, tenants, createdAt: now() };
        const seal = await this.#integrity.seal(canonicalBinding(record));
        if (!(await this.#bindings.create(record, seal, replacing))) {
          throw new ConflictError(`binding ${bindingId} changed while it was being created; retry`);
        }
        return viewOf(record);
      },
      (binding) => ({
        detail: `bound ${binding.principalArn} as ${binding.role} for ${binding.tenants.join(",")} (binding ${binding.bindingId})`,
      }),
    );
  }

  /** Live bindings that verify; an item that fails its check is left out, counted and logged. */
  async list(ctx: RequestContext, limit: number, cursor?: string): Promise<Page<BindingView>> {
    const operation = await this.#gate.begin(ctx, "binding.list");
    const page = await this.#bindings.list(limit, cursor);
    const items: BindingView[] = [];
    for (const stored of page.items) {
      const verified = await this.#verified(stored.sk, stored);
      if (verified !== undefined && verified.record.deletedAt === undefined)
        items.push(viewOf(verified.record));
    }
    await operation.succeeded({ detail: `${items.length} bindings` });
    return page.nextCursor === undefined ? { items } : { items, nextCursor: page.nextCursor };
  }

  async delete(ctx: RequestContext, bindingId: string): Promise<void> {
    const operation = await this.#gate.begin(ctx, "binding.delete", {
      detail: `delete binding ${bindingId}`,
    });
    await operation.change(
      async () => {
        // Read again when the write finds the item changed: a KEK re-wrap re-keying it gives it a new
        // MAC over the same content, and must not make a delete answer that no such binding exists.
        for (let attempt = 0; attempt < CHANGED_ITEM_ATTEMPTS; attempt += 1) {
          const found = await this.#lookup(bindingId);
          // An item that fails its check is no binding: it is not sealed anew, deleted or not.
          if (!isVerified(found) || found.record.deletedAt !== undefined) {
            throw new NotFoundError(`no binding ${bindingId}`);
          }
          const deleted = { ...found.record, deletedAt: now() };
          const seal = await this.#integrity.seal(canonicalBinding(deleted));
          if (await this.#bindings.markDeleted(bindingId, deleted.deletedAt, seal, found.seal.mac)) {
            return found.record;
          }
        }
        throw new ConflictError(`binding ${bindingId} kept changing while it was being deleted; retry`);
      },
      (record) => ({ detail: `deleted binding ${bindingId} of ${record.principalArn}` }),
    );
  }

  /**
   * Turns the IAM identity API Gateway verified into a principal, whose actor is the caller's own ARN
   * (an assumed role's session name included). A request on the IAM routes without one is a 401; a
   * principal no live, verifying binding names is a 403, recorded with its ARN.
   */
  async authenticate(
    identity: IamIdentity | undefined,
    requestId: string,
    target: AuditTarget,
  ): Promise<Principal> {
    if (identity === undefined) {
      await this.#denials.deny(
        target,
        requestId,
        { actor: "anonymous", role: "anonymous" },
        "no_iam_identity",
      );
      throw new AuthenticationError("this route takes a request signed with SigV4 through the IAM routes");
    }
    const key = callerKey(identity.userArn, identity.accountId);
    const found = key === undefined ? "absent" : await this.#lookup(bindingIdFor(keyString(key)));
    const binding = isVerified(found) && found.record.deletedAt === undefined ? found.record : undefined;
    // The id is derived from the key, and the MAC covers both; comparing them again costs nothing.
    const boundKey = binding === undefined ? undefined : bindableKey(binding.principalArn);
    if (
      key === undefined ||
      binding === undefined ||
      boundKey === undefined ||
      keyString(boundKey) !== keyString(key)
    ) {
      const why =
        key === undefined
          ? "unbindable_principal"
          : found !== "absent" && !isVerified(found)
            ? "failed_integrity"
            : "unbound_principal";
      // The ARN is AWS's verified word, so it is recorded as the actor, and repeats collapse per ARN.
      await this.#denials.deny(
        target,
        requestId,
        { actor: identity.userArn.slice(0, 512), role: "aws" },
        why,
      );
      throw new AuthorizationError("no binding grants this IAM principal access");
    }
    return { actor: identity.userArn, role: binding.role, tenants: binding.tenants };
  }

  async #requireTenants(tenants: readonly string[]): Promise<void> {
    const missing = await this.#tenants.missing(tenants);
    if (missing.length > 0) {
      throw new NotFoundError(`tenant ${missing.join(", ")} does not exist; create it before binding to it`);
    }
  }

  async #lookup(bindingId: string): Promise<Lookup> {
    const stored = await this.#bindings.get(bindingId);
    if (stored === undefined) return "absent";
    return (await this.#verified(bindingId, stored)) ?? { failed: stored };
  }

  /**
   * The binding if its MAC verifies over its fields and it is filed under its own id; otherwise
   * undefined, counted and logged by the id it was found under, nothing else.
   */
  async #verified(bindingId: string, stored: StoredBinding): Promise<VerifiedBinding | undefined> {
    const { record, seal } = stored;
    if (
      record !== undefined &&
      seal !== undefined &&
      record.bindingId === bindingId &&
      (await this.#integrity.verify(canonicalBinding(record), seal))
    ) {
      return { record, seal };
    }
    this.#metrics.increment("IntegrityFailures");
    this.#logger.warn("binding item failed its integrity check; refused as unknown", { bindingId });
    return undefined;
  }
}

function isVerified(found: Lookup): found is VerifiedBinding {
  return typeof found === "object" && "seal" in found;
}

function viewOf(record: BindingRecord): BindingView {
  const { deletedAt: _deleted, ...view } = record;
  return { ...view, tenants: [...record.tenants] };
}
