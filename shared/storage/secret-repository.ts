import type { Page, RotationPolicy, SealedVersion, SecretHead, SecretSummary } from "../domain/types.ts";
import {
  HEAD_PREFIX,
  headKey,
  nameOfVersionSortKey,
  tenantPartition,
  VERSION_PREFIX,
  versionKey,
  versionPrefix,
} from "./keys.ts";
import { type Conditional, queryPage, type Table } from "./table.ts";

interface HeadItem {
  tenantId: string;
  name: string;
  version: number;
  envelope: Uint8Array;
  createdAt: string;
  updatedAt: string;
  deletedAt?: string;
  revision?: number;
  latestVersion?: number;
  clientRequestToken?: string;
  previousVersion?: number;
  pendingVersion?: number;
  pendingEnvelope?: Uint8Array;
  pendingCreatedAt?: string;
  pendingClientRequestToken?: string;
  /** Present only on a pending version the service's rotation generated itself. */
  pendingGenerated?: boolean;
  rotation?: RotationPolicy;
  createdBy?: string;
  pendingCreatedBy?: string;
  historyStart?: number;
  maxVersions?: number;
  reference?: string;
  pendingReference?: string;
  referenceRotationDueAt?: string;
}

/** An archived version; a destroyed one keeps its metadata and loses its envelope. */
interface VersionItem {
  version: number;
  envelope?: Uint8Array;
  createdAt: string;
  clientRequestToken?: string;
  createdBy?: string;
  destroyedAt?: string;
  reference?: string;
}

/** One archived version as the version lifecycle sees it: sealed, or destroyed with only its metadata left. */
export interface ArchivedEntry {
  readonly version: number;
  readonly createdAt: string;
  readonly createdBy?: string;
  readonly sealed?: SealedVersion;
  readonly destroyedAt?: string;
}

/** One stored ciphertext-bearing item, as the re-encryption sweep sees it. */
export interface SealedItem {
  readonly sk: string;
  readonly name: string;
  readonly current: SealedVersion;
  readonly pending?: SealedVersion;
}

/** A re-sealed copy of a sealed item: each envelope replaced only if it is still the one that was read. */
export interface Reseal {
  readonly envelope?: { readonly from: Uint8Array; readonly to: Uint8Array };
  readonly pendingEnvelope?: { readonly from: Uint8Array; readonly to: Uint8Array };
}

function headFromItem(item: HeadItem): SecretHead {
  const pending =
    item.pendingVersion !== undefined && item.pendingEnvelope !== undefined
      ? {
          version: item.pendingVersion,
          envelope: new Uint8Array(item.pendingEnvelope),
          createdAt: item.pendingCreatedAt ?? item.updatedAt,
          ...(item.pendingClientRequestToken === undefined
            ? {}
            : { clientRequestToken: item.pendingClientRequestToken }),
          ...(item.pendingCreatedBy === undefined ? {} : { createdBy: item.pendingCreatedBy }),
          ...(item.pendingReference === undefined ? {} : { reference: item.pendingReference }),
          ...(item.pendingGenerated === true ? { generated: true as const } : {}),
        }
      : undefined;
  return {
    tenantId: item.tenantId,
    name: item.name,
    current: {
      version: item.version,
      envelope: new Uint8Array(item.envelope),
      createdAt: item.createdAt,
      ...(item.clientRequestToken === undefined ? {} : { clientRequestToken: item.clientRequestToken }),
      ...(item.createdBy === undefined ? {} : { createdBy: item.createdBy }),
      ...(item.reference === undefined ? {} : { reference: item.reference }),
    },
    updatedAt: item.updatedAt,
    revision: item.revision ?? 0,
    latestVersion: Math.max(item.latestVersion ?? 0, item.version, item.pendingVersion ?? 0),
    ...(item.deletedAt === undefined ? {} : { deletedAt: item.deletedAt }),
    ...(item.previousVersion === undefined ? {} : { previousVersion: item.previousVersion }),
    ...(pending === undefined ? {} : { pending }),
    ...(item.rotation === undefined ? {} : { rotation: item.rotation }),
    ...(item.historyStart === undefined ? {} : { historyStart: item.historyStart }),
    ...(item.maxVersions === undefined ? {} : { maxVersions: item.maxVersions }),
    ...(item.referenceRotationDueAt === undefined
      ? {}
      : { referenceRotationDueAt: item.referenceRotationDueAt }),
  };
}

function itemFromHead(head: SecretHead, revision: number): HeadItem {
  return {
    tenantId: head.tenantId,
    name: head.name,
    version: head.current.version,
    envelope: head.current.envelope,
    createdAt: head.current.createdAt,
    updatedAt: head.updatedAt,
    revision,
    latestVersion: head.latestVersion,
    ...(head.current.clientRequestToken === undefined
      ? {}
      : { clientRequestToken: head.current.clientRequestToken }),
    ...(head.current.createdBy === undefined ? {} : { createdBy: head.current.createdBy }),
    ...(head.current.reference === undefined ? {} : { reference: head.current.reference }),
    ...(head.deletedAt === undefined ? {} : { deletedAt: head.deletedAt }),
    ...(head.previousVersion === undefined ? {} : { previousVersion: head.previousVersion }),
    ...(head.pending === undefined
      ? {}
      : {
          pendingVersion: head.pending.version,
          pendingEnvelope: head.pending.envelope,
          pendingCreatedAt: head.pending.createdAt,
          ...(head.pending.clientRequestToken === undefined
            ? {}
            : { pendingClientRequestToken: head.pending.clientRequestToken }),
          ...(head.pending.createdBy === undefined ? {} : { pendingCreatedBy: head.pending.createdBy }),
          ...(head.pending.reference === undefined ? {} : { pendingReference: head.pending.reference }),
          ...(head.pending.generated === true ? { pendingGenerated: true } : {}),
        }),
    ...(head.rotation === undefined ? {} : { rotation: head.rotation }),
    ...(head.historyStart === undefined ? {} : { historyStart: head.historyStart }),
    ...(head.maxVersions === undefined ? {} : { maxVersions: head.maxVersions }),
    ...(head.referenceRotationDueAt === undefined
      ? {}
      : { referenceRotationDueAt: head.referenceRotationDueAt }),
  };
}

/** Undefined for a destroyed version, whose envelope is gone. */
const sealedFromVersionItem = (item: VersionItem): SealedVersion | undefined =>
  item.envelope === undefined
    ? undefined
    : {
        version: item.version,
        envelope: new Uint8Array(item.envelope),
        createdAt: item.createdAt,
        ...(item.clientRequestToken === undefined ? {} : { clientRequestToken: item.clientRequestToken }),
        ...(item.createdBy === undefined ? {} : { createdBy: item.createdBy }),
        ...(item.reference === undefined ? {} : { reference: item.reference }),
      };

function entryFromVersionItem(item: VersionItem): ArchivedEntry {
  const sealed = sealedFromVersionItem(item);
  return {
    version: item.version,
    createdAt: item.createdAt,
    ...(item.createdBy === undefined ? {} : { createdBy: item.createdBy }),
    ...(sealed === undefined ? {} : { sealed }),
    ...(item.destroyedAt === undefined ? {} : { destroyedAt: item.destroyedAt }),
  };
}

function sealedFromRaw(raw: Record<string, unknown>): SealedItem | undefined {
  const sk = raw.sk as string;
  if (sk.startsWith(HEAD_PREFIX)) {
    const head = headFromItem(raw as unknown as HeadItem);
    return {
      sk,
      name: head.name,
      current: head.current,
      ...(head.pending === undefined ? {} : { pending: head.pending }),
    };
  }
  if (sk.startsWith(VERSION_PREFIX)) {
    // A destroyed version holds no ciphertext for a sweep to re-seal.
    const current = sealedFromVersionItem(raw as unknown as VersionItem);
    return current === undefined ? undefined : { sk, name: nameOfVersionSortKey(sk), current };
  }
  return undefined;
}

/** Heads written before revisions existed have none; their first conditional change checks the version. */
function revisionCondition(expected: { revision: number; version: number } | undefined): Conditional {
  if (expected === undefined) return { condition: "attribute_not_exists(pk)" };
  if (expected.revision === 0) {
    return {
      condition: "attribute_not_exists(revision) AND version = :version",
      values: { ":version": expected.version },
    };
  }
  return { condition: "revision = :revision", values: { ":revision": expected.revision } };
}

/**
 * Storage only ever sees sealed envelopes. A secret is a head item that holds its current version (and
 * a pending one, during a rotation) inline, plus one archive item per earlier version. A write first
 * archives the current version (idempotently) and then swaps the head with one conditional put; the
 * head swap is the commit. A crash between the two leaves an archive copy of a version that is still
 * current, which readers never notice, so every version that was ever committed is readable at every
 * instant.
 */
export class SecretRepository {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  async getHead(tenantId: string, name: string): Promise<SecretHead | undefined> {
    const item = (await this.#table.get(headKey(tenantId, name))) as HeadItem | undefined;
    return item === undefined ? undefined : headFromItem(item);
  }

  async getArchivedVersion(
    tenantId: string,
    name: string,
    version: number,
  ): Promise<SealedVersion | undefined> {
    return (await this.getArchivedEntry(tenantId, name, version))?.sealed;
  }

  /** An archived version with its metadata, destroyed or not. */
  async getArchivedEntry(
    tenantId: string,
    name: string,
    version: number,
  ): Promise<ArchivedEntry | undefined> {
    const item = (await this.#table.get(versionKey(tenantId, name, version))) as VersionItem | undefined;
    return item === undefined ? undefined : entryFromVersionItem(item);
  }

  /** The archived version written with a client request token, if any; a secret has few versions. */
  async findArchivedByToken(
    tenantId: string,
    name: string,
    token: string,
  ): Promise<ArchivedEntry | undefined> {
    const prefix = versionPrefix(name);
    let cursor: string | undefined;
    do {
      const page = await queryPage(
        this.#table,
        {
          keyCondition: "pk = :pk AND begins_with(sk, :prefix)",
          filter: "clientRequestToken = :token",
          values: { ":pk": tenantPartition(tenantId), ":prefix": prefix, ":token": token },
        },
        { partition: tenantPartition(tenantId), sortKeyPrefix: prefix, limit: 100, cursor },
      );
      const found = page.items[0];
      if (found !== undefined) return entryFromVersionItem(found as unknown as VersionItem);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return undefined;
  }

  /** Copies a version into the archive; a copy that is already there is left as it is. */
  async archive(tenantId: string, name: string, sealed: SealedVersion): Promise<void> {
    const item: VersionItem = {
      version: sealed.version,
      envelope: sealed.envelope,
      createdAt: sealed.createdAt,
      ...(sealed.clientRequestToken === undefined ? {} : { clientRequestToken: sealed.clientRequestToken }),
      ...(sealed.createdBy === undefined ? {} : { createdBy: sealed.createdBy }),
      ...(sealed.reference === undefined ? {} : { reference: sealed.reference }),
    };
    await this.#table.putIfAbsent({ ...versionKey(tenantId, name, sealed.version), ...item });
  }

  /**
   * Replaces the head with `next` if it is still the head that was read (`expected`; undefined when
   * there was none). Returns false when another writer got there first.
   */
  replaceHead(next: SecretHead, expected: SecretHead | undefined): Promise<boolean> {
    const revision = (expected?.revision ?? 0) + 1;
    return this.#table.put(
      { ...headKey(next.tenantId, next.name), ...itemFromHead(next, revision) },
      revisionCondition(
        expected === undefined
          ? undefined
          : { revision: expected.revision, version: expected.current.version },
      ),
    );
  }

  /** Returns false when there is no live secret to delete. */
  softDelete(tenantId: string, name: string, deletedAt: string): Promise<boolean> {
    return this.#table.update(headKey(tenantId, name), {
      update: "SET deletedAt = :deletedAt, revision = if_not_exists(revision, :zero) + :one",
      condition: "attribute_exists(pk) AND attribute_not_exists(deletedAt)",
      values: { ":deletedAt": deletedAt, ":zero": 0, ":one": 1 },
    });
  }

  /** Brings a deleted secret back, if it is still deleted since `deletedAt`; false otherwise. */
  undelete(tenantId: string, name: string, deletedAt: string): Promise<boolean> {
    return this.#table.update(headKey(tenantId, name), {
      update: "REMOVE deletedAt SET revision = if_not_exists(revision, :zero) + :one",
      condition: "deletedAt = :deletedAt",
      values: { ":deletedAt": deletedAt, ":zero": 0, ":one": 1 },
    });
  }

  /**
   * Removes an archived version's ciphertext for good, keeping its metadata; false when there is no
   * such archived version. Destroying a destroyed version changes nothing.
   */
  destroyArchived(tenantId: string, name: string, version: number, at: string): Promise<boolean> {
    return this.#table.update(versionKey(tenantId, name, version), {
      update: "REMOVE envelope SET destroyedAt = if_not_exists(destroyedAt, :at)",
      condition: "attribute_exists(pk)",
      values: { ":at": at },
    });
  }

  /** One page of a secret's archived versions in version order, ciphertext included for its DEK version. */
  async listArchived(
    tenantId: string,
    name: string,
    limit: number,
    cursor?: string,
  ): Promise<Page<ArchivedEntry>> {
    const pk = tenantPartition(tenantId);
    const prefix = versionPrefix(name);
    const page = await queryPage(
      this.#table,
      {
        consistent: true,
        keyCondition: "pk = :pk AND begins_with(sk, :prefix)",
        values: { ":pk": pk, ":prefix": prefix },
      },
      { partition: pk, sortKeyPrefix: prefix, limit, cursor },
    );
    return { ...page, items: page.items.map((item) => entryFromVersionItem(item as unknown as VersionItem)) };
  }

  /** Deletes an archived version item outright: for versions of a history that ended, and purges. */
  async removeArchived(tenantId: string, name: string, version: number): Promise<void> {
    await this.#table.delete(versionKey(tenantId, name, version));
  }

  /**
   * Deletes the head if it is still the deleted head the purge began with (a write since then started
   * a new history, which is not the purge's to remove); the purge removes it last.
   */
  removeDeletedHead(tenantId: string, name: string, deletedAt: string): Promise<boolean> {
    return this.#table.delete(headKey(tenantId, name), {
      condition: "deletedAt = :deletedAt",
      values: { ":deletedAt": deletedAt },
    });
  }

  /** Live secrets' names and versions; envelopes are not even read. */
  async list(tenantId: string, limit: number, cursor?: string): Promise<Page<SecretSummary>> {
    const pk = tenantPartition(tenantId);
    const page = await queryPage(
      this.#table,
      {
        keyCondition: "pk = :pk AND begins_with(sk, :prefix)",
        filter: "attribute_not_exists(deletedAt)",
        projection:
          "#name, version, updatedAt, pendingVersion, rotation.dueAt, #reference, referenceRotationDueAt",
        names: { "#name": "name", "#reference": "reference" },
        values: { ":pk": pk, ":prefix": HEAD_PREFIX },
      },
      { partition: pk, sortKeyPrefix: HEAD_PREFIX, limit, cursor },
    );
    const items = page.items.map((item) => {
      // A reference's due date is its Secrets Manager rotation's, recorded at the write; a policy's wins.
      const dueAt =
        (item.rotation as { dueAt?: string } | undefined)?.dueAt ??
        (typeof item.referenceRotationDueAt === "string" ? item.referenceRotationDueAt : undefined);
      return {
        name: item.name as string,
        version: item.version as number,
        updatedAt: item.updatedAt as string,
        ...(typeof item.pendingVersion === "number" ? { pendingVersion: item.pendingVersion } : {}),
        ...(dueAt === undefined ? {} : { rotationDueAt: dueAt }),
        ...(typeof item.reference === "string" ? { reference: item.reference } : {}),
      };
    });
    return { ...page, items };
  }

  /** Live heads with a rotation due date at or before `before`, one page. */
  async listDue(tenantId: string, before: string, limit: number, cursor?: string): Promise<Page<SecretHead>> {
    const pk = tenantPartition(tenantId);
    const page = await queryPage(
      this.#table,
      {
        keyCondition: "pk = :pk AND begins_with(sk, :prefix)",
        filter: "attribute_not_exists(deletedAt) AND rotation.dueAt <= :before",
        values: { ":pk": pk, ":prefix": HEAD_PREFIX, ":before": before },
      },
      { partition: pk, sortKeyPrefix: HEAD_PREFIX, limit, cursor },
    );
    return { ...page, items: page.items.map((item) => headFromItem(item as unknown as HeadItem)) };
  }

  /**
   * Every ciphertext-bearing item of a tenant (heads, soft-deleted ones included, and archived
   * versions) after sort key `after`, one page in key order: what a re-encryption sweep walks.
   */
  async scanSealed(
    tenantId: string,
    after: string | undefined,
    limit: number,
  ): Promise<{ items: SealedItem[]; last?: string }> {
    const pk = tenantPartition(tenantId);
    const output = await this.#table.query({
      consistent: true,
      limit,
      ...(after === undefined
        ? { keyCondition: "pk = :pk", values: { ":pk": pk } }
        : { keyCondition: "pk = :pk AND sk > :after", values: { ":pk": pk, ":after": after } }),
    });
    const items: SealedItem[] = [];
    for (const raw of output.items) {
      const item = sealedFromRaw(raw);
      if (item !== undefined) items.push(item);
    }
    const last = output.lastKey?.sk;
    return typeof last === "string" ? { items, last } : { items };
  }

  /** One sealed item by sort key, read consistently: for a sweep whose re-seal a writer overtook. */
  async getSealed(tenantId: string, sk: string): Promise<SealedItem | undefined> {
    const raw = await this.#table.get({ pk: tenantPartition(tenantId), sk });
    return raw === undefined ? undefined : sealedFromRaw(raw);
  }

  /**
   * Swaps re-sealed envelopes into one item, only if each is still the envelope that was read: a
   * concurrent write wins, and the sweep re-reads the item. A head's revision moves too, so a writer
   * that read the head before the swap (and may carry its old envelopes) fails its conditional write
   * and starts again from the re-sealed head instead of putting the old ciphertext back.
   */
  reseal(tenantId: string, sk: string, change: Reseal): Promise<boolean> {
    const sets: string[] = [];
    const conditions: string[] = [];
    const values: Record<string, unknown> = {};
    if (change.envelope !== undefined) {
      sets.push("envelope = :to");
      conditions.push("envelope = :from");
      values[":to"] = change.envelope.to;
      values[":from"] = change.envelope.from;
    }
    if (change.pendingEnvelope !== undefined) {
      sets.push("pendingEnvelope = :pendingTo");
      conditions.push("pendingEnvelope = :pendingFrom");
      values[":pendingTo"] = change.pendingEnvelope.to;
      values[":pendingFrom"] = change.pendingEnvelope.from;
    }
    if (sets.length > 0 && sk.startsWith(HEAD_PREFIX)) {
      sets.push("revision = if_not_exists(revision, :zero) + :one");
      values[":zero"] = 0;
      values[":one"] = 1;
    }
    if (sets.length === 0) return Promise.resolve(true);
    return this.#table.update(
      { pk: tenantPartition(tenantId), sk },
      { update: `SET ${sets.join(", ")}`, condition: conditions.join(" AND "), values },
    );
  }
}
