import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { CounterMetrics, type MetricName } from "./metrics.ts";

export const METRICS_NAMESPACE = "Strongbox";

/**
 * On Lambda: every increment also goes to CloudWatch as one EMF log line, through Powertools Metrics,
 * under the namespace "Strongbox". Each is published at once rather than buffered to the end of the
 * invocation: these count rare events (failures, denials, anomalies), and a buffered count would be
 * lost if the instance were frozen or killed before the flush.
 */
export class EmfMetrics extends CounterMetrics {
  readonly #metrics: Metrics;

  /**
   * `environment` becomes a dimension beside `service`, so the alarms of dev, staging and prod can
   * share one account and region without counting each other's failures.
   */
  constructor(environment?: string) {
    super();
    this.#metrics = new Metrics({
      namespace: METRICS_NAMESPACE,
      serviceName: "strongbox",
      ...(environment === undefined || environment === "" ? {} : { defaultDimensions: { environment } }),
    });
  }

  /**
   * Resolves once every line written so far has left this process's stdout (the EMF lines and the log
   * lines alike): a cold start that refuses throws right after recording why, and must not take the
   * lines with it.
   */
  flush(): Promise<void> {
    const out = process.stdout;
    // Writes are ordered, so the callback of an empty one comes once everything before it is out.
    if (out.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => out.write("", () => resolve()));
  }

  override increment(name: MetricName, value = 1): void {
    super.increment(name, value);
    this.#metrics.addMetric(name, MetricUnit.Count, value);
    this.#metrics.publishStoredMetrics();
  }
}
