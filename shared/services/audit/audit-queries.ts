import type {
  AuditFilter,
  ChainedAuditRecord,
  ChainHead,
  ChainVerification,
} from "../../domain/audit-chain.ts";
import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import type { Page } from "../../domain/types.ts";
import type { AuditRepository } from "../../storage/audit-repository.ts";
import type { ChainVerifier } from "./chain-verifier.ts";
import type { ChainWriter } from "./chain-writer.ts";

const EXPORT_PAGE = 500;

/** Times compare as strings in storage, so bounds are brought to the stored form (with milliseconds). */
function normalised(filter: AuditFilter): AuditFilter {
  return {
    ...filter,
    ...(filter.from === undefined ? {} : { from: new Date(filter.from).toISOString() }),
    ...(filter.to === undefined ? {} : { to: new Date(filter.to).toISOString() }),
  };
}

/** Reading the audit trail: listings, exports, heads and verification, each on the record itself. */
export class AuditQueries {
  readonly #repository: AuditRepository;
  readonly #writer: ChainWriter;
  readonly #verifier: ChainVerifier;
  readonly #gate: OperationGate;

  constructor(
    repository: AuditRepository,
    writer: ChainWriter,
    verifier: ChainVerifier,
    gate: OperationGate,
  ) {
    this.#repository = repository;
    this.#writer = writer;
    this.#verifier = verifier;
    this.#gate = gate;
  }

  async list(
    ctx: RequestContext,
    scope: string,
    limit: number,
    cursor?: string,
    filter: AuditFilter = {},
  ): Promise<Page<ChainedAuditRecord>> {
    const operation = await this.#gate.begin(ctx, "audit.read", { tenantId: scope });
    const page = await this.#repository.query(scope, normalised(filter), { limit, cursor });
    await operation.succeeded();
    return page;
  }

  /**
   * Every matching record, oldest first, with its chain fields, so an export can be checked against
   * the chain later. The export is on the record before the first line goes out (fail closed).
   */
  async export(
    ctx: RequestContext,
    scope: string,
    filter: AuditFilter,
  ): Promise<AsyncGenerator<ChainedAuditRecord>> {
    const operation = await this.#gate.begin(ctx, "audit.export", { tenantId: scope });
    const detail = Object.entries(filter)
      .filter(([, value]) => value !== undefined)
      .map(([name, value]) => `${name}=${value}`)
      .join(" ");
    await operation.succeeded(detail ? { detail } : {});
    const repository = this.#repository;
    return (async function* () {
      let cursor: string | undefined;
      do {
        const page = await repository.query(scope, normalised(filter), {
          limit: EXPORT_PAGE,
          cursor,
          oldestFirst: true,
        });
        yield* page.items;
        cursor = page.nextCursor;
      } while (cursor !== undefined);
    })();
  }

  /**
   * A scope's head as stored, and as this instance last appended it (when it did), for comparing
   * with a verified head later: the per-tenant part of what `/health` showed before it went public.
   */
  async head(
    ctx: RequestContext,
    scope: string,
  ): Promise<{ scope: string; head?: ChainHead; appendedHere?: ChainHead }> {
    const operation = await this.#gate.begin(ctx, "audit.head", { tenantId: scope });
    // Taken before the head read's own audit record moves the chain on.
    const stored = await this.#writer.storedHead(scope);
    const appendedHere = this.#writer.knownHead(scope);
    await operation.succeeded();
    return {
      scope,
      ...(stored === undefined ? {} : { head: stored }),
      ...(appendedHere === undefined ? {} : { appendedHere }),
    };
  }

  /** Walks the scope's chain; the verification itself goes on the record, with its answer. */
  async verify(ctx: RequestContext, scope: string, expected?: ChainHead): Promise<ChainVerification> {
    const operation = await this.#gate.begin(ctx, "audit.verify", { tenantId: scope });
    const result = await this.#verifier.verify(scope, expected);
    const detail =
      result.break === undefined
        ? `intact up to sequence ${result.verifiedThrough}`
        : `broken at sequence ${result.break.sequence}: ${result.break.reason}`;
    await operation.succeeded({ detail });
    return result;
  }
}
