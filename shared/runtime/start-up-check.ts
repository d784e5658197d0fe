import type { MetricsRecorder } from "../observability/metrics.ts";
import type { Runtime } from "./container.ts";

/** Start-up refused: the runtime cannot protect or read what the table holds. The log says why. */
export class StartUpRefusedError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`refusing to start: ${problems.join("; ")}`);
    this.name = "StartUpRefusedError";
  }
}

/**
 * The one start-up check `npm start` and every Lambda cold start (but the audit function's) run
 * before serving: the keyring answers, the table is reachable, and every KEK the table's registry
 * names is configured, since DEKs wrapped by any other could not be read. Records `KekConfigured`
 * (1 or 0) once, logs "refusing to start" with each problem (the fingerprint message among them),
 * and throws StartUpRefusedError when any is found; the caller exits, or on Lambda fails its init.
 */
export async function checkStartUp(
  runtime: Pick<Runtime, "health" | "logger">,
  metrics: MetricsRecorder,
): Promise<void> {
  const { problems, kekConfigured } = await runtime.health.assess();
  metrics.increment("KekConfigured", kekConfigured ? 1 : 0);
  if (problems.length === 0) return;
  for (const problem of problems) runtime.logger.error("refusing to start", { problem });
  throw new StartUpRefusedError(problems);
}
