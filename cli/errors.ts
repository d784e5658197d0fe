/** Exit codes scripts can rely on: 0 fine, 1 a problem was found, 2 the command was used wrongly. */
export const EXIT = { ok: 0, problem: 1, usage: 2 } as const;

/** The command was used wrongly (exit 2). The message names the fix. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** The command ran and found something wrong (exit 1). */
export class ProblemFound extends Error {
  override readonly name = "ProblemFound";

  constructor(
    message: string,
    /** The one line that tells the operator what to do about it. */
    readonly fix?: string,
  ) {
    super(message);
  }
}
