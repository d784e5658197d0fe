import { envelopeDekVersion, openValue, sealValue } from "../../crypto/envelope.ts";
import { DecryptError, DekExhaustedError, KekMismatchError } from "../../domain/errors.ts";
import { DEFAULT_DEK_SEAL_LIMIT, type SealingKey, type SecretSealer } from "../../domain/sealing.ts";
import type { SealedVersion } from "../../domain/types.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { CurrentDataKey, DataKeys } from "./data-keys.ts";

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Sealing and opening of secret values for every use case, counting each decrypt failure once.
 *
 * Every seal under a DEK is counted on the tenant item, because random 96-bit IVs bound one key to
 * well under 2^32 seals: taking a sealing key reserves one seal with an atomic ADD in the very call
 * that reads the current DEK (so a write costs no extra call, and a read none at all), and a key
 * used for more seals than it reserved (a sweep re-sealing a page) owes the rest, added by the next
 * key this process takes for the tenant. The scheduled runner rotates a DEK past its threshold; past
 * the hard limit no key is handed out (503 `dek_exhausted`).
 */
export class Sealer implements SecretSealer {
  readonly #dataKeys: DataKeys;
  readonly #metrics: MetricsRecorder;
  /** How long a snapshot of the current DEK may be used; 0 means never (no snapshot is fresh). */
  readonly #freshnessMs: number;
  readonly #sealLimit: number;
  /** Per tenant, seals made beyond what their keys reserved, not yet added to the count. */
  readonly #owed = new Map<string, number>();

  constructor(
    dataKeys: DataKeys,
    metrics: MetricsRecorder,
    freshnessMs: number,
    sealLimit = DEFAULT_DEK_SEAL_LIMIT,
  ) {
    this.#dataKeys = dataKeys;
    this.#metrics = metrics;
    this.#freshnessMs = freshnessMs;
    this.#sealLimit = sealLimit;
  }

  async sealingKey(tenantId: string): Promise<SealingKey> {
    const owed = this.#owed.get(tenantId) ?? 0;
    this.#owed.delete(tenantId);
    let current: CurrentDataKey;
    try {
      current = await this.#countingDecryptFailures(() => this.#dataKeys.current(tenantId, 1 + owed));
    } catch (error) {
      // Not known to have been added: owed still, so a failed call never loses a seal from the count.
      this.#owe(tenantId, owed);
      throw error;
    }
    if (current.seals > this.#sealLimit) {
      throw new DekExhaustedError(
        `tenant ${tenantId}'s DEK v${current.version} has sealed its limit of ${this.#sealLimit} values; writes resume once the scheduled runner has rotated it`,
      );
    }
    const freshnessMs = this.#freshnessMs;
    let sealed = 0;
    return {
      dekVersion: current.version,
      seal: (name, version, value) => {
        sealed += 1;
        if (sealed > 1) this.#owe(tenantId, 1);
        return sealValue(current.key, current.version, utf8Encoder.encode(value), {
          tenantId,
          secretName: name,
          version,
        });
      },
      // Monotonic, so a wall-clock step cannot stretch the window.
      fresh: () => performance.now() - current.readAtMs < freshnessMs,
    };
  }

  #owe(tenantId: string, seals: number): void {
    if (seals > 0) this.#owed.set(tenantId, (this.#owed.get(tenantId) ?? 0) + seals);
  }

  open(tenantId: string, name: string, sealed: SealedVersion): Promise<string> {
    return this.#countingDecryptFailures(async () => {
      const dek = await this.#dataKeys.unwrapped(tenantId, envelopeDekVersion(sealed.envelope));
      const binding = { tenantId, secretName: name, version: sealed.version };
      return utf8Decoder.decode(openValue(dek, sealed.envelope, binding));
    });
  }

  /** Every failure to decrypt, whether of a DEK or of a value, is counted once, here. */
  async #countingDecryptFailures<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof DecryptError || error instanceof KekMismatchError) {
        this.#metrics.increment("DecryptFailures");
      }
      if (error instanceof KekMismatchError) this.#metrics.increment("KekMismatches");
      throw error;
    }
  }
}
