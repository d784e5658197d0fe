import { DispatchUnavailableError } from "../../domain/errors.ts";
import type { RewrapDispatch } from "../../domain/rotation.ts";
import type { Deadline } from "../../domain/work.ts";
import type { Logger } from "../../observability/logger.ts";
import { codeOf } from "./run-failure.ts";

/**
 * Where a re-wrap request goes when the service is one process (`npm start`, the tests): the same work
 * the rotation function does on a request, run in the background of this process. Never two at once:
 * a request that arrives meanwhile makes the worker go round once more when it is done, since the
 * request may have restarted the re-wrap under another KEK after the running round last looked.
 */
export class BackgroundRewrap implements RewrapDispatch {
  readonly #run: (deadline: Deadline, runId: string) => Promise<unknown>;
  readonly #logger: Logger;
  readonly #deadline: Deadline = { expired: () => this.#stopped };
  #pending: string | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  /** `run` works on the re-wrap until it is done, the deadline passes, or a pass fails; it records its own failures. */
  constructor(run: (deadline: Deadline, runId: string) => Promise<unknown>, logger: Logger) {
    this.#run = run;
    this.#logger = logger;
  }

  async request(requestId: string): Promise<void> {
    if (this.#stopped) {
      throw new DispatchUnavailableError(
        "the server is shutting down; the re-wrap is recorded and the next start's rotation run continues it",
      );
    }
    this.#pending = requestId;
    this.#running ??= this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending !== undefined && !this.#stopped) {
        const requestId = this.#pending;
        this.#pending = undefined;
        try {
          await this.#run(this.#deadline, `rewrap-${requestId}`);
        } catch (error) {
          this.#logger.error("background re-wrap failed", { requestId, code: codeOf(error) });
        }
      }
    } finally {
      // No await between the loop's last check and here, so no request can slip in unseen.
      this.#running = undefined;
    }
  }

  /** Resolves once no re-wrap runs in this process (at once if none does). */
  settled(): Promise<void> {
    return this.#running ?? Promise.resolve();
  }

  /** Stops at the re-wrap's next checkpoint, for shutdown; what is left resumes from it. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.settled();
  }
}
