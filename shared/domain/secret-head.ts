import { DAY_MS } from "./time.ts";
import type { RotationPolicy, SealedVersion, SecretHead } from "./types.ts";

export const isLive = (head: SecretHead | undefined): head is SecretHead =>
  head !== undefined && head.deletedAt === undefined;

/** A new current value restarts the rotation clock: the next due date is a full period away. */
function rescheduled(policy: RotationPolicy | undefined, at: string): RotationPolicy | undefined {
  if (policy === undefined) return undefined;
  const { notifiedDueAt: _announced, dueAt: _due, ...rest } = policy;
  return {
    ...rest,
    lastRotatedAt: at,
    ...(policy.periodDays === undefined
      ? {}
      : { dueAt: new Date(Date.parse(at) + policy.periodDays * DAY_MS).toISOString() }),
  };
}

/** The head after `current` becomes the current version; the old current one becomes `previous`. */
export function withNewCurrent(
  head: SecretHead | undefined,
  tenantId: string,
  name: string,
  current: SealedVersion,
  at: string,
): SecretHead {
  const rotation = rescheduled(head?.rotation, at);
  return {
    tenantId,
    name,
    current,
    updatedAt: at,
    revision: head?.revision ?? 0,
    latestVersion: Math.max(head?.latestVersion ?? 0, current.version),
    ...(head === undefined ? {} : { previousVersion: head.current.version }),
    ...(rotation === undefined ? {} : { rotation }),
    ...(head?.historyStart === undefined ? {} : { historyStart: head.historyStart }),
    ...(head?.maxVersions === undefined ? {} : { maxVersions: head.maxVersions }),
  };
}
