import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { openValue, sealValue } from "../shared/crypto/envelope.ts";
import { formatNumber, median, report, VALUE_BYTES, verdict } from "./support.ts";

const ROUNDS = 7;
const ROUND_MS = 250;
const WARMUP_MS = 300;
/** Operations between clock reads, so the clock is not part of what is measured. */
const BATCH = 64;
/** The envelope may cost at most this many times the raw cipher. */
const TARGET_SLOWDOWN = 2;

type RoundTrip = () => Uint8Array;

/** The service's path: header, associated data binding tenant, name and version, then AES-256-GCM. */
function envelopeRoundTrip(dek: Uint8Array, value: Uint8Array): RoundTrip {
  const binding = { tenantId: "bench", secretName: "api-key", version: 1 };
  return () => openValue(dek, sealValue(dek, 1, value, binding), binding);
}

/** The floor: AES-256-GCM with a random 12-byte IV, no header and no associated data. */
function rawRoundTrip(key: Uint8Array, value: Uint8Array): RoundTrip {
  return () => {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    const ciphertext = Buffer.concat([cipher.update(value), cipher.final()]);
    const decipher = createDecipheriv("aes-256-gcm", key, iv);
    decipher.setAuthTag(cipher.getAuthTag());
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  };
}

function opsPerSecond(roundTrip: RoundTrip, durationMs: number): number {
  let ops = 0;
  const started = performance.now();
  let elapsed = 0;
  while (elapsed < durationMs) {
    for (let i = 0; i < BATCH; i += 1) roundTrip();
    ops += BATCH;
    elapsed = performance.now() - started;
  }
  return (ops / elapsed) * 1000;
}

function assertRoundTrips(roundTrip: RoundTrip, value: Uint8Array, what: string): void {
  if (!Buffer.from(roundTrip()).equals(Buffer.from(value))) throw new Error(`${what} did not round-trip`);
}

export function measureSealOpen(): void {
  const key = new Uint8Array(randomBytes(32));
  const value = new Uint8Array(randomBytes(VALUE_BYTES));
  const envelope = envelopeRoundTrip(key, value);
  const raw = rawRoundTrip(key, value);
  assertRoundTrips(envelope, value, "sealValue/openValue");
  assertRoundTrips(raw, value, "raw AES-256-GCM");

  opsPerSecond(envelope, WARMUP_MS);
  opsPerSecond(raw, WARMUP_MS);
  // Alternating rounds, so that drift (turbo, a noisy neighbour) lands on both sides alike.
  const envelopeRounds: number[] = [];
  const rawRounds: number[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    envelopeRounds.push(opsPerSecond(envelope, ROUND_MS));
    rawRounds.push(opsPerSecond(raw, ROUND_MS));
  }
  const envelopeOps = median(envelopeRounds);
  const rawOps = median(rawRounds);
  const slowdown = rawOps / envelopeOps;

  report.section(
    `1. seal+open of ${VALUE_BYTES}-byte values, one thread (median of ${ROUNDS} × ${ROUND_MS} ms)`,
  );
  report.note("raw = createCipheriv/createDecipheriv, random 12-byte IV, no header, no associated data");
  report.figure("envelope: sealValue+openValue", formatNumber(envelopeOps), "ops/s");
  report.figure("raw AES-256-GCM", formatNumber(rawOps), "ops/s");
  report.figure(
    `envelope / raw (target ≥ ${formatNumber(1 / TARGET_SLOWDOWN, 2)}: within ${TARGET_SLOWDOWN}×)`,
    formatNumber(envelopeOps / rawOps, 2),
    `(raw is ${formatNumber(slowdown, 2)}× faster), ${verdict(slowdown <= TARGET_SLOWDOWN)}`,
  );
}
