import { envelopeDekVersion, openValue, sealValue } from "../../crypto/envelope.ts";
import { DecryptError, KekMismatchError } from "../../domain/errors.ts";
import type { SealingKey, SecretSealer } from "../../domain/sealing.ts";
import type { SealedVersion } from "../../domain/types.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { CurrentDataKey, DataKeys } from "./data-keys.ts";

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Sealing and opening of secret values for every use case, counting each decrypt failure once. */
export class Sealer implements SecretSealer {
  readonly #dataKeys: DataKeys;
  readonly #metrics: MetricsRecorder;
  /** How long a snapshot of the current DEK may be used; 0 means never (no snapshot is fresh). */
  readonly #freshnessMs: number;

  constructor(dataKeys: DataKeys, metrics: MetricsRecorder, freshnessMs: number) {
    this.#dataKeys = dataKeys;
    this.#metrics = metrics;
    this.#freshnessMs = freshnessMs;
  }

  async sealingKey(tenantId: string): Promise<SealingKey> {
    const current: CurrentDataKey = await this.#countingDecryptFailures(() =>
      this.#dataKeys.current(tenantId),
    );
    const freshnessMs = this.#freshnessMs;
    return {
      dekVersion: current.version,
      seal: (name, version, value) =>
        sealValue(current.key, current.version, utf8Encoder.encode(value), {
          tenantId,
          secretName: name,
          version,
        }),
      // Monotonic, so a wall-clock step cannot stretch the window.
      fresh: () => performance.now() - current.readAtMs < freshnessMs,
    };
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
