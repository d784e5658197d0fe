import { type CounterMetrics, METRIC_NAMES, type MetricName } from "./metrics.ts";

/** Prometheus' naming: snake case with the service as prefix, and `_total` on counters. */
function prometheusName(name: MetricName): string {
  const snake = name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
  return name === "KekConfigured" ? `strongbox_${snake}` : `strongbox_${snake}_total`;
}

const HELP: Record<MetricName, string> = {
  DecryptFailures: "Secret values or data keys that failed to decrypt or authenticate.",
  AuthDenied: "Requests refused for a missing, invalid or insufficient token.",
  IntegrityFailures: "Token items refused because their MAC is missing or does not verify.",
  AuditWriteFailures: "Audit records that could not be written.",
  KekMismatches: "Data keys wrapped by a KEK that is not configured.",
  KekConfigured:
    "1 when the KEK was reachable and every KEK the table needs was configured at start-up, else 0.",
  KmsAnomalies: "Anomalies flagged by CloudTrail KMS event ingestion.",
  RotationsDue: "Rotations found due.",
  RotationFailures: "Rotations that failed.",
  RotationsCompleted: "Rotations completed: re-encryption sweeps, KEK re-wraps and secret rotations.",
  SealRefusals: "Requests refused because their tenant, or everything, is sealed by the kill switch.",
  GlobalSealActive:
    "Global seals placed, and requests refused under one: non-zero means everything is sealed.",
  BreakGlassActive: "Break-glass activations and every request made with a break-glass credential.",
};

/**
 * The process's counters in the Prometheus text exposition format (version 0.0.4). Only these fixed
 * names and their numbers: no labels, so no tenant, secret or token can ever appear here.
 */
export function renderPrometheus(metrics: CounterMetrics): string {
  return METRIC_NAMES.map((name) => {
    const metric = prometheusName(name);
    const type = name === "KekConfigured" ? "gauge" : "counter";
    return `# HELP ${metric} ${HELP[name]}\n# TYPE ${metric} ${type}\n${metric} ${metrics.count(name)}\n`;
  }).join("");
}
