import { envelopeDekVersion } from "../../crypto/envelope.ts";
import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import { ConflictError, NotFoundError, RecoveryWindowPassedError } from "../../domain/errors.ts";
import { isLive } from "../../domain/secret-head.ts";
import { now } from "../../domain/time.ts";
import type { SealedVersion, SecretHead, VERSION_LABELS, VersionMetadata } from "../../domain/types.ts";
import type { ArchivedEntry, SecretRepository } from "../../storage/secret-repository.ts";
import type { HeadWriter } from "./head-writer.ts";

type Label = (typeof VERSION_LABELS)[number];

/** Archived versions are walked in pages of this many when pruning or purging. */
const WALK_PAGE = 100;

export interface VersionListing {
  readonly name: string;
  readonly deletedAt?: string;
  readonly versions: VersionMetadata[];
  readonly nextCursor?: string;
}

function labelsOf(head: SecretHead, version: number): Label[] {
  const labels: Label[] = [];
  if (head.current.version === version) labels.push("current");
  if (head.pending?.version === version) labels.push("pending");
  if (head.previousVersion === version) labels.push("previous");
  return labels;
}

function metadata(head: SecretHead, entry: ArchivedEntry): VersionMetadata {
  return {
    version: entry.version,
    createdAt: entry.createdAt,
    ...(entry.createdBy === undefined ? {} : { createdBy: entry.createdBy }),
    labels: labelsOf(head, entry.version),
    ...(entry.sealed === undefined ? {} : { dekVersion: envelopeDekVersion(entry.sealed.envelope) }),
    destroyed: entry.sealed === undefined,
    ...(entry.destroyedAt === undefined ? {} : { destroyedAt: entry.destroyedAt }),
  };
}

const entryOf = (sealed: SealedVersion): ArchivedEntry => ({
  version: sealed.version,
  createdAt: sealed.createdAt,
  ...(sealed.createdBy === undefined ? {} : { createdBy: sealed.createdBy }),
  sealed,
});

/**
 * A secret's versions over their life: listed as metadata, destroyed one by one or past `maxVersions`,
 * undeleted within the recovery window, or purged altogether. Destruction removes the ciphertext from
 * the archive item and keeps only its metadata, so it cannot be undone by anything the service holds.
 */
export class VersionLifecycle {
  readonly #secrets: SecretRepository;
  readonly #gate: OperationGate;
  readonly #heads: HeadWriter;
  readonly #recoveryWindowMs: number;

  constructor(secrets: SecretRepository, gate: OperationGate, heads: HeadWriter, recoveryWindowMs: number) {
    this.#secrets = secrets;
    this.#gate = gate;
    this.#heads = heads;
    this.#recoveryWindowMs = recoveryWindowMs;
  }

  /** The versions of the secret's present history, oldest first; the head's own come on the last page. */
  async versions(
    ctx: RequestContext,
    tenantId: string,
    name: string,
    limit: number,
    cursor?: string,
  ): Promise<VersionListing> {
    const operation = await this.#gate.begin(ctx, "secret.versions", { tenantId, secretName: name });
    const head = await this.#secrets.getHead(tenantId, name);
    if (head === undefined) throw new NotFoundError(`secret ${name} does not exist in tenant ${tenantId}`);
    const page = await this.#secrets.listArchived(tenantId, name, limit, cursor);
    const start = head.historyStart ?? 1;
    const byVersion = new Map<number, ArchivedEntry>();
    for (const entry of page.items) if (entry.version >= start) byVersion.set(entry.version, entry);
    // The head's copies are the live ones (the archive may hold a stale copy of the current version).
    for (const sealed of [head.current, head.pending]) {
      if (sealed !== undefined && (page.nextCursor === undefined || byVersion.has(sealed.version))) {
        byVersion.set(sealed.version, entryOf(sealed));
      }
    }
    const versions = [...byVersion.values()]
      .sort((a, b) => a.version - b.version)
      .map((entry) => metadata(head, entry));
    await operation.succeeded();
    return {
      name,
      ...(head.deletedAt === undefined ? {} : { deletedAt: head.deletedAt }),
      versions,
      ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor }),
    };
  }

  /**
   * Destroys one archived version. The current and pending versions are refused (write or promote
   * another first); the previous one loses its label before its ciphertext goes, so no read is ever
   * pointed at a destroyed version.
   */
  async destroy(ctx: RequestContext, tenantId: string, name: string, version: number): Promise<void> {
    const operation = await this.#gate.begin(ctx, "secret.destroy-version", { tenantId, secretName: name });
    await operation.change(
      async () => {
        const head = await this.#secrets.getHead(tenantId, name);
        if (!isLive(head) || version > head.latestVersion || version < (head.historyStart ?? 1)) {
          throw new NotFoundError(`secret ${name} has no version ${version} in tenant ${tenantId}`);
        }
        if (head.current.version === version || head.pending?.version === version) {
          throw new ConflictError(
            `version ${version} of ${name} is ${head.current.version === version ? "current" : "pending"}; only other versions can be destroyed`,
          );
        }
        if (head.previousVersion === version) {
          await this.#heads.update(tenantId, name, (fresh) => {
            if (fresh.previousVersion !== version) return fresh;
            const { previousVersion: _label, ...rest } = fresh;
            return rest;
          });
        }
        if (!(await this.#secrets.destroyArchived(tenantId, name, version, now()))) {
          throw new NotFoundError(`secret ${name} has no version ${version} in tenant ${tenantId}`);
        }
      },
      () => ({ version }),
    );
  }

  /** Brings a deleted secret back with its history, within the recovery window. */
  async undelete(
    ctx: RequestContext,
    tenantId: string,
    name: string,
  ): Promise<{ name: string; version: number }> {
    const operation = await this.#gate.begin(ctx, "secret.undelete", { tenantId, secretName: name });
    return operation.change(
      async () => {
        const head = await this.#secrets.getHead(tenantId, name);
        if (head === undefined)
          throw new NotFoundError(`secret ${name} does not exist in tenant ${tenantId}`);
        if (head.deletedAt === undefined) throw new ConflictError(`secret ${name} is not deleted`);
        if (Date.parse(head.deletedAt) + this.#recoveryWindowMs < Date.now()) {
          throw new RecoveryWindowPassedError(
            `secret ${name} was deleted at ${head.deletedAt}, past the recovery window; purge it or write a new value`,
          );
        }
        if (!(await this.#secrets.undelete(tenantId, name, head.deletedAt))) {
          throw new ConflictError(`secret ${name} changed during the undelete; read it and retry`);
        }
        return { name, version: head.current.version };
      },
      (result) => ({ version: result.version }),
    );
  }

  /**
   * Destroys everything stored for the name. The secret is soft-deleted first, so reads stop at once;
   * then every archived version goes, then the head. A purge that dies part-way is finished by running
   * it again.
   */
  async purge(ctx: RequestContext, tenantId: string, name: string): Promise<void> {
    const operation = await this.#gate.begin(ctx, "secret.purge", { tenantId, secretName: name });
    await operation.change(async () => {
      let head = await this.#secrets.getHead(tenantId, name);
      if (head === undefined) throw new NotFoundError(`secret ${name} does not exist in tenant ${tenantId}`);
      if (head.deletedAt === undefined) {
        await this.#secrets.softDelete(tenantId, name, now());
        head = await this.#secrets.getHead(tenantId, name);
      }
      const deletedAt = head?.deletedAt;
      if (deletedAt === undefined) throw new ConflictError(`secret ${name} changed during the purge; retry`);
      await this.#walkArchive(tenantId, name, (entry) =>
        this.#secrets.removeArchived(tenantId, name, entry.version),
      );
      if (!(await this.#secrets.removeDeletedHead(tenantId, name, deletedAt))) {
        throw new ConflictError(`secret ${name} was written during the purge; its new history was kept`);
      }
    });
  }

  /** Removes the archived versions of a history a delete ended, once a new one has begun at `start`. */
  async removeHistoryBefore(tenantId: string, name: string, start: number): Promise<void> {
    await this.#walkArchive(tenantId, name, async (entry) => {
      if (entry.version < start) await this.#secrets.removeArchived(tenantId, name, entry.version);
    });
  }

  /**
   * Enforces the secret's `maxVersions`: while more versions than that hold ciphertext, the oldest
   * unlabelled one is destroyed. Labelled versions are never pruned. Each destruction is recorded as
   * the system's own change.
   */
  async prune(tenantId: string, name: string, requestId: string): Promise<void> {
    const head = await this.#secrets.getHead(tenantId, name);
    if (!isLive(head) || head.maxVersions === undefined) return;
    const start = head.historyStart ?? 1;
    const inline = new Set([head.current.version, head.pending?.version].filter((v) => v !== undefined));
    const kept: number[] = [];
    await this.#walkArchive(tenantId, name, (entry) => {
      if (entry.sealed !== undefined && entry.version >= start && !inline.has(entry.version)) {
        kept.push(entry.version);
      }
    });
    let excess = kept.length + inline.size - head.maxVersions;
    for (const version of kept.sort((a, b) => a - b)) {
      if (excess <= 0) break;
      if (labelsOf(head, version).length > 0) continue;
      const operation = this.#gate.system(
        "secret.destroy-version",
        { tenantId, secretName: name, detail: `maxVersions ${head.maxVersions}` },
        requestId,
      );
      await operation.change(
        () => this.#secrets.destroyArchived(tenantId, name, version, now()),
        () => ({ version }),
      );
      excess -= 1;
    }
  }

  async #walkArchive(
    tenantId: string,
    name: string,
    visit: (entry: ArchivedEntry) => unknown,
  ): Promise<void> {
    let cursor: string | undefined;
    do {
      const page = await this.#secrets.listArchived(tenantId, name, WALK_PAGE, cursor);
      for (const entry of page.items) await visit(entry);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
  }
}
