import { mintWrappingToken, parseWrappingToken, tokenSecretMatches } from "../../crypto/tokens.ts";
import type { DenialRecorder, OperationGate } from "../../domain/audit-trail.ts";
import {
  NotFoundError,
  StoreUnavailableError,
  WrappingTokenExpiredError,
  WrappingTokenUsedError,
} from "../../domain/errors.ts";
import type { ItemIntegrity } from "../../domain/item-integrity.ts";
import { now } from "../../domain/time.ts";
import { SYSTEM_SCOPE } from "../../domain/types.ts";
import {
  canonicalWrap,
  type PayloadSealer,
  type ResponseWrapper,
  type WrapInfo,
  type WrapRecord,
} from "../../domain/wrapping.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { StoredWrap, WrapRepository } from "../../storage/wrap-repository.ts";

/** A wrap item whose MAC verified over what it says, and the wrapping token's secret matched. */
interface VerifiedWrap {
  readonly record: WrapRecord;
  readonly stored: StoredWrap;
  readonly mac: string;
}

export interface ResponseWrappingDependencies {
  readonly wraps: WrapRepository;
  readonly sealer: PayloadSealer;
  readonly integrity: ItemIntegrity;
  readonly gate: OperationGate;
  readonly denials: DenialRecorder;
  readonly metrics: MetricsRecorder;
  readonly logger: Logger;
}

/** An unwrap whose item changed under it (a re-key) reads it again this often before it gives up. */
const CHANGED_ITEM_ATTEMPTS = 3;

/**
 * Response wrapping (seed 002 §3.1). `wrap` stores a payload behind a new single-use wrapping token;
 * `unwrap` hands it out exactly once, the winner of one conditional write that also removes it;
 * `lookup` shows who wrapped it and until when, without using it. The wrapping token is the only
 * credential these take, as in Vault: whoever holds it may unwrap it, so it is handed over, not kept.
 */
export class ResponseWrapping implements ResponseWrapper {
  readonly #wraps: WrapRepository;
  readonly #sealer: PayloadSealer;
  readonly #integrity: ItemIntegrity;
  readonly #gate: OperationGate;
  readonly #denials: DenialRecorder;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;

  constructor(dependencies: ResponseWrappingDependencies) {
    this.#wraps = dependencies.wraps;
    this.#sealer = dependencies.sealer;
    this.#integrity = dependencies.integrity;
    this.#gate = dependencies.gate;
    this.#denials = dependencies.denials;
    this.#metrics = dependencies.metrics;
    this.#logger = dependencies.logger;
  }

  /** Called by the use case whose response is wrapped, which records the wrap id in its own record. */
  async wrap(
    scope: string,
    kind: WrapRecord["kind"],
    creator: string,
    payload: string,
    ttlSeconds: number,
  ): Promise<WrapInfo & { readonly token: string }> {
    const minted = mintWrappingToken();
    const created = new Date();
    const record: WrapRecord = {
      wrapId: minted.wrapId,
      secretHash: minted.secretHash,
      scope,
      kind,
      creator,
      createdAt: created.toISOString(),
      expiresAt: new Date(created.getTime() + ttlSeconds * 1000).toISOString(),
    };
    const sealed = await this.#sealer.seal(scope, minted.wrapId, payload);
    const seal = await this.#integrity.seal(canonicalWrap(record));
    if (!(await this.#wraps.create(record, sealed, seal))) {
      throw new StoreUnavailableError("wrapping id collision; refusing to overwrite a wrapped response");
    }
    return { token: minted.token, ...infoOf(record) };
  }

  /**
   * The payload, once. A used token and an expired one are 410, recorded at high severity: a used
   * one may mean someone else unwrapped it first. An unknown one is 404, as is one whose secret half
   * or MAC does not match (nothing tells a guesser which). The payload's tenant must be unsealed.
   */
  async unwrap(token: string, requestId: string): Promise<{ kind: WrapRecord["kind"]; payload: string }> {
    const { record, stored, mac } = await this.#verified(token, requestId, "wrap.unwrap");
    const operation = this.#gate.system(
      "wrap.unwrap",
      { tenantId: record.scope, detail: `${record.kind} wrapped by ${record.creator}` },
      requestId,
      { actor: `wrap:${record.wrapId}`, role: "anonymous" },
    );
    return operation.change(
      async () => {
        if (stored.usedAt !== undefined || stored.payload === undefined) throw used(record.wrapId);
        if (!isUnexpired(record)) {
          // The payload goes at once rather than waiting at rest for a TTL the local store lacks.
          await this.#wraps.consume(record.wrapId, mac, now(), "expired");
          throw expired(record.wrapId);
        }
        let current = { mac, payload: stored.payload };
        for (let attempt = 0; ; attempt += 1) {
          if (await this.#wraps.consume(record.wrapId, current.mac, now(), "unwrapped")) {
            const payload = await this.#sealer.open(record.scope, record.wrapId, current.payload);
            return { kind: record.kind, payload };
          }
          // The item changed since it was read. Used, it is 410; re-keyed by a KEK re-wrap (a new MAC
          // over the same content, its payload's key re-wrapped), it is unwrapped as it is now.
          const again = await this.#wraps.get(record.wrapId);
          const content = canonicalWrap(record);
          if (
            attempt + 1 >= CHANGED_ITEM_ATTEMPTS ||
            again?.record === undefined ||
            again.seal === undefined ||
            again.payload === undefined ||
            again.usedAt !== undefined ||
            canonicalWrap(again.record) !== content ||
            !(await this.#integrity.verify(content, again.seal))
          ) {
            throw used(record.wrapId);
          }
          current = { mac: again.seal.mac, payload: again.payload };
        }
      },
      () => ({ detail: `unwrapped ${record.kind} wrapped by ${record.creator}` }),
    );
  }

  /** Who wrapped it, when, and until when, without using it. */
  async lookup(token: string, requestId: string): Promise<WrapInfo> {
    const { record, stored } = await this.#verified(token, requestId, "wrap.lookup");
    const operation = this.#gate.system("wrap.lookup", { tenantId: record.scope }, requestId, {
      actor: `wrap:${record.wrapId}`,
      role: "anonymous",
    });
    const gone =
      stored.usedAt !== undefined || stored.payload === undefined
        ? used(record.wrapId)
        : isUnexpired(record)
          ? undefined
          : expired(record.wrapId);
    if (gone !== undefined) {
      await operation.failed({ detail: gone.code, severity: "high" });
      throw gone;
    }
    await operation.succeeded();
    return infoOf(record);
  }

  async #verified(
    token: string,
    requestId: string,
    action: "wrap.unwrap" | "wrap.lookup",
  ): Promise<VerifiedWrap> {
    const parsed = parseWrappingToken(token);
    const stored = parsed === undefined ? undefined : await this.#wraps.get(parsed.wrapId);
    const record = stored?.record;
    const mac = stored?.seal?.mac;
    let why: string | undefined;
    if (parsed === undefined || stored === undefined) why = "unknown_wrapping_token";
    else if (
      record === undefined ||
      stored.seal === undefined ||
      record.wrapId !== parsed.wrapId ||
      !(await this.#integrity.verify(canonicalWrap(record), stored.seal))
    ) {
      why = "failed_integrity";
      this.#metrics.increment("IntegrityFailures");
      this.#logger.warn("wrap item failed its integrity check; refused as unknown", {
        wrapId: parsed.wrapId,
      });
    } else if (!tokenSecretMatches(parsed.secret, record.secretHash)) why = "unknown_wrapping_token";
    if (
      why !== undefined ||
      parsed === undefined ||
      stored === undefined ||
      record === undefined ||
      mac === undefined
    ) {
      await this.#denials.deny(
        { tenantId: SYSTEM_SCOPE, action },
        requestId,
        { actor: parsed === undefined ? "anonymous" : `wrap:${parsed.wrapId}`, role: "anonymous" },
        why,
      );
      throw new NotFoundError("no such wrapping token");
    }
    return { record, stored, mac };
  }
}

const used = (wrapId: string) =>
  new WrappingTokenUsedError(
    `wrapping token ${wrapId} was already unwrapped; if not by you, treat its payload as intercepted`,
  );
const expired = (wrapId: string) => new WrappingTokenExpiredError(`wrapping token ${wrapId} has expired`);

function isUnexpired(record: WrapRecord): boolean {
  const expiresAt = Date.parse(record.expiresAt);
  return Number.isFinite(expiresAt) && expiresAt > Date.now();
}

function infoOf(record: WrapRecord): WrapInfo {
  return {
    id: record.wrapId,
    kind: record.kind,
    creator: record.creator,
    createdAt: record.createdAt,
    expiresAt: record.expiresAt,
  };
}
