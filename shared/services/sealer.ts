import { envelopeDekVersion, openValue, sealValue } from "../crypto/envelope.ts";
import { DecryptError, KekMismatchError } from "../domain/errors.ts";
import type { SealedVersion } from "../domain/types.ts";
import type { MetricsRecorder } from "../observability/metrics.ts";
import type { CurrentDataKey, DataKeys } from "./data-keys.ts";

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Seals under one snapshot of the tenant's current DEK. */
export interface SealingKey {
  readonly dekVersion: number;
  seal(name: string, version: number, value: string): Uint8Array;
  /**
   * Whether the snapshot is recent enough to commit ciphertext sealed under it. A DEK version is
   * retired only a grace period after the next one was created, and a writer holding an older snapshot
   * takes a fresh one instead, so no commit can land under a DEK that has been retired meanwhile.
   */
  fresh(): boolean;
}

/** Sealing and opening of secret values for every use case, counting each decrypt failure once. */
export class Sealer {
  constructor(
    private readonly dataKeys: DataKeys,
    private readonly metrics: MetricsRecorder,
    /** How long a snapshot of the current DEK may be used; 0 means never (no snapshot is fresh). */
    private readonly freshnessMs: number,
  ) {}

  async sealingKey(tenantId: string): Promise<SealingKey> {
    const current: CurrentDataKey = await this.countingDecryptFailures(() => this.dataKeys.current(tenantId));
    const freshnessMs = this.freshnessMs;
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
    return this.countingDecryptFailures(async () => {
      const dek = await this.dataKeys.unwrapped(tenantId, envelopeDekVersion(sealed.envelope));
      const binding = { tenantId, secretName: name, version: sealed.version };
      return utf8Decoder.decode(openValue(dek, sealed.envelope, binding));
    });
  }

  /** Every failure to decrypt, whether of a DEK or of a value, is counted once, here. */
  async countingDecryptFailures<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof DecryptError || error instanceof KekMismatchError) {
        this.metrics.increment("DecryptFailures");
      }
      if (error instanceof KekMismatchError) this.metrics.increment("KekMismatches");
      throw error;
    }
  }
}
