import { ConflictError, NotFoundError } from "../domain/errors.ts";
import type { Tenant, TenantView } from "../domain/types.ts";
import type { TenantRepository } from "../storage/tenant-repository.ts";
import type { AuditService } from "./audit-service.ts";
import { now, type RequestContext } from "./context.ts";
import type { DataKeys } from "./data-keys.ts";

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
  constructor(
    private readonly tenants: TenantRepository,
    private readonly dataKeys: DataKeys,
    private readonly audit: AuditService,
  ) {}

  async create(ctx: RequestContext, tenantId: string): Promise<TenantView> {
    await this.audit.authorize(ctx, "tenant:create", { tenantId, action: "tenant.create" });
    if ((await this.tenants.get(tenantId)) !== undefined) {
      throw new ConflictError(`tenant ${tenantId} already exists`);
    }
    return this.audit.aroundChange(this.audit.entry(ctx, { tenantId, action: "tenant.create" }), async () => {
      const tenant: Tenant = {
        tenantId,
        createdAt: now(),
        currentDekVersion: 1,
        dataKeys: [await this.dataKeys.generateFirst(tenantId)],
      };
      if (!(await this.tenants.create(tenant))) throw new ConflictError(`tenant ${tenantId} already exists`);
      return view(tenant);
    });
  }

  async get(ctx: RequestContext, tenantId: string): Promise<TenantView> {
    await this.audit.authorize(ctx, "tenant:read", { tenantId, action: "tenant.read" });
    const tenant = await this.tenants.get(tenantId);
    if (tenant === undefined) throw new NotFoundError(`tenant ${tenantId} does not exist`);
    return view(tenant);
  }
}
