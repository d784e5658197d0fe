import type { Keyring } from "../../crypto/keyring.ts";
import { canonicalBreakGlass } from "../../domain/break-glass.ts";
import { canonicalCertificate } from "../../domain/deletion-certificate.ts";
import { ConflictError, DecryptError, KekMismatchError } from "../../domain/errors.ts";
import {
  canonicalBinding,
  canonicalToken,
  type ItemIntegrity,
  type ItemSeal,
} from "../../domain/item-integrity.ts";
import type { AuthorityRekey, RekeyKind, RekeyPage } from "../../domain/rotation.ts";
import { canonicalSeal, GLOBAL_SEAL_SCOPE } from "../../domain/seal.ts";
import { now } from "../../domain/time.ts";
import { canonicalWrap } from "../../domain/wrapping.ts";
import type { Logger } from "../../observability/logger.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { BindingRepository } from "../../storage/binding-repository.ts";
import type { BreakGlassRepository } from "../../storage/break-glass-repository.ts";
import type { DeletionRepository } from "../../storage/deletion-repository.ts";
import type { SealRepository } from "../../storage/seal-repository.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";
import type { TokenRepository } from "../../storage/token-repository.ts";
import type { WrapRepository } from "../../storage/wrap-repository.ts";

export interface ItemRekeyStores {
  readonly tokens: TokenRepository;
  readonly bindings: BindingRepository;
  readonly seals: SealRepository;
  readonly deletions: DeletionRepository;
  readonly breakGlass: BreakGlassRepository;
  readonly wraps: WrapRepository;
  readonly tenants: TenantRepository;
}

/** What one item is, as read: its canonical content and seal, and a wrap's payload key. */
interface Found {
  readonly content: string;
  readonly seal: ItemSeal;
  readonly payload?: { readonly kekId: string; readonly wrappedKey: Uint8Array; readonly scope: string };
}

type Outcome = "rekeyed" | "current" | "gone" | "failed" | "waiting";

/** An item is re-read and re-tried this often when a writer keeps changing it under the re-key. */
const ATTEMPTS = 3;

/**
 * The re-key of authority items: each item's MAC made again under the active item key, but only over
 * content that verified under the key its old MAC names, and only while the item is still that one.
 * An item that verifies under no configured key is counted and left alone, so that it stays invalid:
 * the re-key never turns a forged or edited item into one that verifies.
 */
export class ItemRekey implements AuthorityRekey {
  readonly #stores: ItemRekeyStores;
  readonly #integrity: ItemIntegrity;
  readonly #keyring: Keyring;
  readonly #metrics: MetricsRecorder;
  readonly #logger: Logger;
  readonly #itemKeyRotates: boolean;
  readonly #payloadsMove: boolean;

  /**
   * `itemKeyRotates` is false where the item key's keeper is not the KEK (on AWS, AUDIT_MAC_KEY_ID,
   * which a KMS_KEY_ID change leaves as it is), and without a previous KEK configured, under which
   * nothing could verify: then only wraps are visited, for their payloads' data keys.
   * `payloadsMove` is false on AWS, where the rotation role may not touch a `_system` data key at all
   * (KMS authorizes a ReEncrypt's two encryption contexts apart, so a role allowed to re-encrypt one
   * could re-encrypt it into a tenant's context and decrypt it there): a live wrap whose payload key
   * is under another KEK is then waited for, until it is used or expires, as the re-wrap's `waiting`.
   */
  constructor(
    stores: ItemRekeyStores,
    integrity: ItemIntegrity,
    keyring: Keyring,
    metrics: MetricsRecorder,
    logger: Logger,
    itemKeyRotates: boolean,
    payloadsMove = true,
  ) {
    this.#itemKeyRotates = itemKeyRotates;
    this.#payloadsMove = payloadsMove;
    this.#stores = stores;
    this.#integrity = integrity;
    this.#keyring = keyring;
    this.#metrics = metrics;
    this.#logger = logger;
  }

  async page(
    kind: RekeyKind,
    targetKekId: string,
    cursor: string | undefined,
    limit: number,
  ): Promise<RekeyPage> {
    if (kind !== "wraps" && !this.#itemKeyRotates) return { rekeyed: 0, integrityFailures: 0 };
    const { ids, next } = await this.#ids(kind, cursor, limit);
    let rekeyed = 0;
    let integrityFailures = 0;
    let waiting = 0;
    for (const id of ids) {
      for (const outcome of await this.#visit(kind, id, targetKekId)) {
        if (outcome === "rekeyed") rekeyed += 1;
        if (outcome === "failed") integrityFailures += 1;
        if (outcome === "waiting") waiting += 1;
      }
    }
    return {
      rekeyed,
      integrityFailures,
      ...(waiting === 0 ? {} : { waiting }),
      ...(next === undefined ? {} : { cursor: next }),
    };
  }

  async #ids(
    kind: RekeyKind,
    cursor: string | undefined,
    limit: number,
  ): Promise<{ ids: string[]; next?: string }> {
    const stores = this.#stores;
    const paged = (page: { items: string[]; nextCursor?: string }) =>
      page.nextCursor === undefined ? { ids: page.items } : { ids: page.items, next: page.nextCursor };
    switch (kind) {
      case "tokens":
        return paged(await stores.tokens.listIds(limit, cursor));
      case "bindings": {
        const page = await stores.bindings.list(limit, cursor);
        return paged({ ...page, items: page.items.map((item) => item.sk) });
      }
      case "tenants": {
        // The global seal rides on the first page of tenants: `*` is no tenant id.
        const page = await stores.tenants.listIds(cursor, limit);
        const ids = cursor === undefined ? [GLOBAL_SEAL_SCOPE, ...page.tenantIds] : page.tenantIds;
        return page.last === undefined ? { ids } : { ids, next: page.last };
      }
      case "break-glass":
        return paged(await stores.breakGlass.listIds(limit, cursor));
      case "wraps":
        return paged(await stores.wraps.listLiveIds(now(), limit, cursor));
    }
  }

  #visit(kind: RekeyKind, id: string, targetKekId: string): Promise<Outcome[]> {
    const stores = this.#stores;
    switch (kind) {
      case "tokens":
        return this.#one(
          kind,
          id,
          targetKekId,
          async () => {
            const stored = await stores.tokens.get(id);
            if (stored === undefined) return undefined;
            const { record, seal } = stored;
            return record === undefined || seal === undefined || record.tokenId !== id
              ? "unreadable"
              : { content: canonicalToken(record), seal };
          },
          (sealedAs, seal) => stores.tokens.reseal(id, sealedAs, seal),
        ).then((one) => [one]);
      case "bindings":
        return this.#one(
          kind,
          id,
          targetKekId,
          async () => {
            const stored = await stores.bindings.get(id);
            if (stored === undefined) return undefined;
            const { record, seal } = stored;
            return record === undefined || seal === undefined || record.bindingId !== id
              ? "unreadable"
              : { content: canonicalBinding(record), seal };
          },
          (sealedAs, seal) => stores.bindings.reseal(id, sealedAs, seal),
        ).then((one) => [one]);
      case "tenants":
        return Promise.all([
          this.#one(
            "seal",
            id,
            targetKekId,
            async () => {
              const stored = await stores.seals.get(id);
              if (stored === undefined) return undefined;
              const { record, seal } = stored;
              return record === undefined || seal === undefined || record.scope !== id
                ? "unreadable"
                : { content: canonicalSeal(record), seal };
            },
            (sealedAs, seal) => stores.seals.reseal(id, sealedAs, seal),
          ),
          id === GLOBAL_SEAL_SCOPE
            ? Promise.resolve<Outcome>("gone")
            : this.#one(
                "deletion certificate",
                id,
                targetKekId,
                async () => {
                  const certificate = await stores.deletions.getCertificate(id);
                  if (certificate === undefined) return undefined;
                  const { mac, macKeyRef, ...content } = certificate;
                  return typeof mac !== "string" || typeof macKeyRef !== "string" || content.tenantId !== id
                    ? "unreadable"
                    : { content: canonicalCertificate(content), seal: { mac, macKeyRef } };
                },
                (sealedAs, seal) => stores.deletions.resealCertificate(id, sealedAs, seal),
              ),
        ]);
      case "break-glass":
        return this.#one(
          kind,
          id,
          targetKekId,
          async () => {
            const stored = await stores.breakGlass.get(id);
            if (stored === undefined) return undefined;
            const { record, seal } = stored;
            return record === undefined || seal === undefined || record.id !== id
              ? "unreadable"
              : { content: canonicalBreakGlass(record), seal };
          },
          (sealedAs, seal) => stores.breakGlass.reseal(id, sealedAs, seal),
        ).then((one) => [one]);
      case "wraps":
        return this.#one(
          kind,
          id,
          targetKekId,
          async () => {
            const stored = await stores.wraps.get(id);
            if (stored === undefined) return undefined;
            const { record, seal, payload } = stored;
            if (record === undefined || seal === undefined || record.wrapId !== id) return "unreadable";
            return {
              content: canonicalWrap(record),
              seal,
              ...(payload === undefined
                ? {}
                : { payload: { kekId: payload.kekId, wrappedKey: payload.wrappedKey, scope: record.scope } }),
            };
          },
          (sealedAs, seal, payload) => stores.wraps.reseal(id, sealedAs, seal, payload),
        ).then((one) => [one]);
    }
  }

  async #one(
    kind: string,
    id: string,
    targetKekId: string,
    read: () => Promise<Found | "unreadable" | undefined>,
    write: (
      sealedAs: string,
      seal: ItemSeal,
      payload?: { readonly fromKekId: string; readonly kekId: string; readonly wrappedKey: Uint8Array },
    ) => Promise<boolean>,
  ): Promise<Outcome> {
    for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
      const found = await read();
      if (found === undefined) return "gone";
      if (found === "unreadable") return this.#failed(kind, id);
      const { content, seal, payload } = found;
      const fresh = await this.#integrity.seal(content);
      const payloadCurrent = payload === undefined || payload.kekId === targetKekId;
      // Already under the active key: its own readers verify it, and nothing here would change it.
      if (fresh.macKeyRef === seal.macKeyRef && payloadCurrent) return "current";
      if (!(await this.#integrity.verify(content, seal))) return this.#failed(kind, id);
      if (payload !== undefined && !payloadCurrent && !this.#payloadsMove) {
        // One that names no configured KEK could never open: waiting for it would wait for nothing.
        if (!(await this.#keyring.probe()).includes(payload.kekId)) {
          return this.#failed(kind, id, "kek_mismatch");
        }
        return "waiting";
      }
      let rewrapped: { fromKekId: string; kekId: string; wrappedKey: Uint8Array } | undefined;
      if (payload !== undefined && !payloadCurrent) {
        try {
          const wrapped = await this.#keyring.rewrap(
            { kekId: payload.kekId, ciphertext: payload.wrappedKey },
            { tenantId: payload.scope, dekVersion: 0 },
          );
          rewrapped = { fromKekId: payload.kekId, kekId: wrapped.kekId, wrappedKey: wrapped.ciphertext };
        } catch (error) {
          // The MAC does not cover a payload's key (canonicalWrap), so a table writer can name a KEK
          // nobody has or spoil the ciphertext: such a wrap could never be opened anyway, and must not
          // hold the re-wrap back forever. A keyring that is merely unavailable stops the re-wrap, which
          // resumes here, rather than leave an openable wrap behind the old KEK's removal.
          if (!(error instanceof KekMismatchError || error instanceof DecryptError)) throw error;
          return this.#failed(kind, id, error.code);
        }
      }
      if (await write(seal.mac, fresh, rewrapped)) return "rekeyed";
    }
    throw new ConflictError(`${kind} ${id} kept changing during its re-key; the re-wrap resumes there`);
  }

  #failed(kind: string, id: string, payloadError?: string): Outcome {
    this.#metrics.increment("IntegrityFailures");
    if (payloadError === undefined) {
      this.#logger.warn("authority item verifies under no configured key; the re-key leaves it as it is", {
        kind,
        id,
      });
    } else {
      this.#logger.warn("a wrap's payload key cannot be re-wrapped; the re-key leaves the wrap as it is", {
        kind,
        id,
        code: payloadError,
      });
    }
    return "failed";
  }
}
