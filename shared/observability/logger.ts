import { Logger } from "@aws-lambda-powertools/logger";

export type { Logger };

/**
 * Structured JSON logs. Call sites pass identifiers and error codes only; values, tokens and keys are
 * never handed to the logger, which the canary tests check on every path.
 */
export function createLogger(): Logger {
  return new Logger({ serviceName: "strongbox" });
}
