import type {
  AuditFilter,
  ChainedAuditRecord,
  ChainHead,
  ChainVerification,
} from "../../domain/audit-chain.ts";
import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import { StrongboxError } from "../../domain/errors.ts";
import type { Page } from "../../domain/types.ts";
import type { AuditRepository } from "../../storage/audit-repository.ts";
import type { ChainVerifier } from "./chain-verifier.ts";
import type { ChainWriter } from "./chain-writer.ts";
import type { Sequencer } from "./sequencer.ts";

/** A verify call over the API stops after this long and answers with a cursor, well inside API Gateway's 29 s. */
export const VERIFY_BUDGET_MS = 10_000;

/** How much of the records one export page may hold, in the measure of whoever answers with it. */
export interface ExportBudget {
  readonly maxBytes: number;
  sizeOf(record: ChainedAuditRecord): number;
}

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
  readonly #sequencer: Sequencer;
  readonly #gate: OperationGate;

  constructor(
    repository: AuditRepository,
    writer: ChainWriter,
    verifier: ChainVerifier,
    sequencer: Sequencer,
    gate: OperationGate,
  ) {
    this.#repository = repository;
    this.#writer = writer;
    this.#verifier = verifier;
    this.#sequencer = sequencer;
    this.#gate = gate;
  }

  /**
   * Chains what waits in the scope's queue before the trail is read, so a caller sees every record
   * written so far. Best effort: the stream's sequencer chains it anyway, and verify reports a wait
   * past its bound.
   */
  async #catchUp(scope: string): Promise<void> {
    await this.#sequencer.catchUp(scope).catch(() => undefined);
  }

  async list(
    ctx: RequestContext,
    scope: string,
    limit: number,
    cursor?: string,
    filter: AuditFilter = {},
  ): Promise<Page<ChainedAuditRecord>> {
    const operation = await this.#gate.begin(ctx, "audit.read", { tenantId: scope });
    await this.#catchUp(scope);
    const page = await this.#repository.query(scope, normalised(filter), { limit, cursor });
    await operation.succeeded();
    return page;
  }

  /**
   * One page of the matching records, oldest first, with their chain fields, so an export can be
   * checked against the chain later: as many as fit `budget.maxBytes` by `budget.sizeOf` (always at
   * least one), and a cursor when more remain. The page is read whole before anything is answered, so
   * the export goes on the record as what it was: a success naming the page, only once the page is
   * in hand (fail closed: nothing goes out before that record), or a failure when the read failed.
   */
  async export(
    ctx: RequestContext,
    scope: string,
    filter: AuditFilter,
    page: { readonly cursor?: string | undefined; readonly budget: ExportBudget },
  ): Promise<Page<ChainedAuditRecord>> {
    const operation = await this.#gate.begin(ctx, "audit.export", { tenantId: scope });
    await this.#catchUp(scope);
    const filters = Object.entries(filter)
      .filter(([, value]) => value !== undefined)
      .map(([name, value]) => `${name}=${value}`);
    let read: Page<ChainedAuditRecord>;
    try {
      read = await this.#readPage(scope, filter, page.cursor, page.budget);
    } catch (error) {
      const code = error instanceof StrongboxError ? error.code : "internal_error";
      await operation.failed({ detail: [...filters, `failed=${code}`].join(" ") });
      throw error;
    }
    const last = read.items.at(-1);
    const detail = [
      ...filters,
      `records=${read.items.length}`,
      ...(last === undefined ? [] : [`lastSequence=${last.sequence}`]),
      ...(page.cursor === undefined ? [] : ["continued=true"]),
      ...(read.nextCursor === undefined ? [] : ["more=true"]),
    ].join(" ");
    await operation.succeeded({ detail });
    return read;
  }

  async #readPage(
    scope: string,
    filter: AuditFilter,
    cursor: string | undefined,
    budget: ExportBudget,
  ): Promise<Page<ChainedAuditRecord>> {
    const items: ChainedAuditRecord[] = [];
    let bytes = 0;
    let after: string | undefined;
    // Leaving the loop early closes the repository's reader (for await calls its return).
    for await (const { record, cursor: next } of this.#repository.exportFrom(
      scope,
      normalised(filter),
      cursor,
    )) {
      const size = budget.sizeOf(record);
      // The record that does not fit is where the next page starts; so a cursor means more remain.
      if (after !== undefined && bytes + size > budget.maxBytes) return { items, nextCursor: after };
      items.push(record);
      bytes += size;
      after = next;
    }
    return { items };
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
    await this.#catchUp(scope);
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
  async verify(
    ctx: RequestContext,
    scope: string,
    expected?: ChainHead,
    cursor?: string,
  ): Promise<ChainVerification> {
    const operation = await this.#gate.begin(ctx, "audit.verify", { tenantId: scope });
    if (cursor === undefined) await this.#catchUp(scope);
    const result = await this.#verifier.verify(scope, expected, {
      budgetMs: VERIFY_BUDGET_MS,
      ...(cursor === undefined ? {} : { cursor }),
    });
    const detail =
      result.break === undefined
        ? `intact up to sequence ${result.verifiedThrough}${result.nextCursor === undefined ? "" : " so far"}`
        : `broken at sequence ${result.break.sequence}: ${result.break.reason}`;
    await operation.succeeded({ detail });
    return result;
  }
}
