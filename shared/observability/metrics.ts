export const METRIC_NAMES = [
  "DecryptFailures",
  "AuthDenied",
  "IntegrityFailures",
  "AuditWriteFailures",
  "KekMismatches",
  "KekConfigured",
  "KmsAnomalies",
  "RotationsDue",
  "RotationFailures",
  "RotationsCompleted",
  "SealRefusals",
  "GlobalSealActive",
  "BreakGlassActive",
] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

export interface MetricsRecorder {
  /** `KekConfigured` is recorded once per cold start, with 1 or 0; everything else counts events. */
  increment(name: MetricName, value?: number): void;
}

/** Process-local counters; the Lambda side publishes the same names through its own recorder. */
export class CounterMetrics implements MetricsRecorder {
  readonly #counts = new Map<MetricName, number>();

  increment(name: MetricName, value = 1): void {
    this.#counts.set(name, (this.#counts.get(name) ?? 0) + value);
  }

  count(name: MetricName): number {
    return this.#counts.get(name) ?? 0;
  }
}
