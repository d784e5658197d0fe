/** Long work (a sweep, a re-wrap, a scheduled run) stops at its next checkpoint once this says so. */
export interface Deadline {
  /** True once the caller's time budget is spent. */
  expired(): boolean;
}

/** A deadline `ms` from now. */
export function deadlineIn(ms: number): Deadline {
  const end = Date.now() + ms;
  return { expired: () => Date.now() >= end };
}

/** Who the audit trail names for the changes the service makes on its own schedule. */
export const SYSTEM_ACTOR = { actor: "rotation", role: "system" } as const;
