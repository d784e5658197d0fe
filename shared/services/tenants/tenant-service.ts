import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import { ConflictError, NotFoundError, TenantDeletedError } from "../../domain/errors.ts";
import type { DataKeyIssuer } from "../../domain/sealing.ts";
import { now } from "../../domain/time.ts";
import type { Page, Tenant, TenantView } from "../../domain/types.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";

function view(tenant: Tenant): TenantView {
  return {
    tenantId: tenant.tenantId,
    createdAt: tenant.createdAt,
    currentDekVersion: tenant.currentDekVersion,
    dataKeys: tenant.dataKeys.map(({ version, kekId, createdAt }) => ({ version, kekId, createdAt })),
    ...(tenant.retiredDataKeys === undefined || tenant.retiredDataKeys.length === 0
      ? {}
      : { retiredDataKeys: tenant.retiredDataKeys }),
  };
}

export class TenantService {
  readonly #tenants: TenantRepository;
  readonly #dataKeys: DataKeyIssuer;
  readonly #gate: OperationGate;

  constructor(tenants: TenantRepository, dataKeys: DataKeyIssuer, gate: OperationGate) {
    this.#tenants = tenants;
    this.#dataKeys = dataKeys;
    this.#gate = gate;
  }

  async create(ctx: RequestContext, tenantId: string): Promise<TenantView> {
    const operation = await this.#gate.begin(ctx, "tenant.create", { tenantId });
    const existing = await this.#tenants.get(tenantId);
    // A deleted tenant's id is never reused: tokens scoped to it and its kept audit chain name it.
    if (existing?.deletedAt !== undefined) {
      throw new ConflictError(`tenant ${tenantId} was deleted; its id is not reused`);
    }
    if (existing !== undefined) throw new ConflictError(`tenant ${tenantId} already exists`);
    return operation.change(async () => {
      const tenant: Tenant = {
        tenantId,
        createdAt: now(),
        currentDekVersion: 1,
        dataKeys: [await this.#dataKeys.generateFirst(tenantId)],
      };
      if (!(await this.#tenants.create(tenant))) throw new ConflictError(`tenant ${tenantId} already exists`);
      return view(tenant);
    });
  }

  /** Tenant ids in order, from the tenant directory: one Query per page, never a Scan. */
  async list(ctx: RequestContext, limit: number, cursor?: string): Promise<Page<{ tenantId: string }>> {
    const operation = await this.#gate.begin(ctx, "tenant.list");
    const page = await this.#tenants.listIds(cursor, limit);
    await operation.succeeded();
    const items = page.tenantIds.map((tenantId) => ({ tenantId }));
    return page.last === undefined ? { items } : { items, nextCursor: page.last };
  }

  async get(ctx: RequestContext, tenantId: string): Promise<TenantView> {
    const operation = await this.#gate.begin(ctx, "tenant.read", { tenantId });
    const tenant = await this.#tenants.get(tenantId);
    // No record for a tenant that does not exist: it would start a trail for it.
    if (tenant === undefined) throw new NotFoundError(`tenant ${tenantId} does not exist`);
    if (tenant.deletedAt !== undefined) {
      throw new TenantDeletedError(
        `tenant ${tenantId} was deleted at ${tenant.deletedAt}; see its deletion certificate`,
      );
    }
    // The metadata goes out only once its read is on the record (the access review's §10.2).
    await operation.succeeded();
    return view(tenant);
  }
}
