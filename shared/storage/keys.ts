import type { Key } from "./item-reader.ts";

// Every key and key prefix of the one table. Stored data is laid out by these: changing one orphans
// the items already written under it.

/** A tenant's partition: its tenant item, its secrets and their archived versions, its sweep checkpoint. */
export const tenantPartition = (tenantId: string) => `T#${tenantId}`;

export const TENANT_SORT_KEY = "TENANT";
export const tenantKey = (tenantId: string): Key => ({ pk: tenantPartition(tenantId), sk: TENANT_SORT_KEY });

/** Sort keys of secret heads start with this; nothing else in a tenant partition does. */
export const HEAD_PREFIX = "S#";
export const headKey = (tenantId: string, name: string): Key => ({
  pk: tenantPartition(tenantId),
  sk: `${HEAD_PREFIX}${name}`,
});

export const VERSION_PREFIX = "V#";
/** The sort-key prefix of one secret's archived versions. */
export const versionPrefix = (name: string) => `${VERSION_PREFIX}${name}#`;
/** Zero-padded so that sort-key order is version order. */
export const versionKey = (tenantId: string, name: string, version: number): Key => ({
  pk: tenantPartition(tenantId),
  sk: `${versionPrefix(name)}${String(version).padStart(10, "0")}`,
});
/** The secret an archived version's sort key belongs to. */
export const nameOfVersionSortKey = (sk: string) => sk.slice(VERSION_PREFIX.length, sk.lastIndexOf("#"));

export const sweepKey = (tenantId: string): Key => ({ pk: tenantPartition(tenantId), sk: "SWEEP" });

export const tokenKey = (tokenId: string): Key => ({ pk: `TOKEN#${tokenId}`, sk: "TOKEN" });

/** Every binding under one partition, so the list is a Query; the sort key is the binding id. */
export const BINDINGS_PARTITION = "BINDINGS";
export const bindingKey = (bindingId: string): Key => ({ pk: BINDINGS_PARTITION, sk: bindingId });

export const AUDIT_PREFIX = "AUDIT#";
export const auditPartition = (scope: string) => `${AUDIT_PREFIX}${scope}`;
export const scopeOfAuditPartition = (pk: string) => pk.slice(AUDIT_PREFIX.length);

export const BLOCK_PREFIX = "SEQ#";
/** Just past every `SEQ#…` key, for ranges that start inside the chain. */
export const BLOCK_RANGE_END = "SEQ$";
/** Zero-padded so that sort-key order is sequence order. */
export const blockSortKey = (firstSequence: number) =>
  `${BLOCK_PREFIX}${String(firstSequence).padStart(12, "0")}`;
export const BLOCK_SORT_KEY = /^SEQ#\d{12}$/;
/** The sequence number of a block's first record. */
export const firstSequenceOfBlock = (sk: string) => Number(sk.slice(BLOCK_PREFIX.length));

/**
 * Records the request path wrote and no sequencer has chained yet, in their scope's partition: sorted
 * by time, so the oldest is one Query away, and unique by id, so no two writers ever contend.
 */
export const PENDING_PREFIX = "NEW#";
export const pendingSortKey = (time: string, id: string) => `${PENDING_PREFIX}${time}#${id}`;

const META = "META";
export const KEK_REGISTRY_KEY: Key = { pk: META, sk: "KEKS" };
export const PENDING_SWEEPS_KEY: Key = { pk: META, sk: "SWEEPS" };
export const KEK_REWRAP_KEY: Key = { pk: META, sk: "KEK-REWRAP" };
export const DUE_SCAN_KEY: Key = { pk: META, sk: "DUE-SCAN" };
/** A tenant deletion's checkpoint and its certificate: outside the partition the deletion empties. */
export const deletionSweepKey = (tenantId: string): Key => ({ pk: META, sk: `DELETION#${tenantId}` });
export const deletionCertificateKey = (tenantId: string): Key => ({
  pk: META,
  sk: `DELETION-CERTIFICATE#${tenantId}`,
});
export const DEK_AGE_SCAN_KEY: Key = { pk: META, sk: "DEK-AGE-SCAN" };
/**
 * Earlier versions marked their finished directory backfill here (`done: true`); it is still honoured.
 * The mark now lives on the KEK registry item (`directoryComplete`).
 */
export const LEGACY_BACKFILL_DONE_KEY: Key = { pk: META, sk: "TENANTS-BACKFILL" };

/** One small item per tenant under a single partition, so work over every tenant is a Query, not a Scan. */
export const DIRECTORY_PARTITION = "TENANTS";
export const directoryEntryKey = (tenantId: string): Key => ({ pk: DIRECTORY_PARTITION, sk: tenantId });

/**
 * A tenant's kill-switch item, or the global one (scope `*`). Outside the tenant's partition, so no
 * query or sweep over a tenant's items ever meets it; read beside the token on every request.
 */
export const sealKey = (scope: string): Key => ({ pk: `SEAL#${scope}`, sk: "SEAL" });

/**
 * One small item per token (`sk` the token id), written before the token item, so the access review
 * lists every token by a Query; what it shows comes from the MAC'd token items themselves.
 */
export const TOKEN_DIRECTORY_PARTITION = "TOKENS";
export const tokenDirectoryKey = (tokenId: string): Key => ({ pk: TOKEN_DIRECTORY_PARTITION, sk: tokenId });

/** Which token the local server last issued as its bootstrap admin, so a revoked one is not silently replaced. */
export const LOCAL_BOOTSTRAP_KEY: Key = { pk: "META", sk: "LOCAL-BOOTSTRAP" };

/** A response-wrapping item, by its wrapping id. */
export const wrapKey = (wrapId: string): Key => ({ pk: `WRAP#${wrapId}`, sk: "WRAP" });

/** A break-glass request and, once activated, its credential's hash. */
export const breakGlassKey = (id: string): Key => ({ pk: `BG#${id}`, sk: "BG" });

/** The ids of every bootstrap admin token issued, so none of them can approve a break-glass. */
export const BOOTSTRAP_TOKENS_KEY: Key = { pk: "META", sk: "BOOTSTRAP-TOKENS" };

/**
 * One small item per break-glass request (`sk` its id), written before the request, so the KEK
 * re-wrap finds every one by a Query to re-key its MAC.
 */
export const BREAK_GLASS_DIRECTORY_PARTITION = "BREAK-GLASS";
export const breakGlassDirectoryKey = (id: string): Key => ({ pk: BREAK_GLASS_DIRECTORY_PARTITION, sk: id });

/**
 * One small item per wrapping token, sorted by its expiry (`<expiresAt>#<wrapId>`) and written before
 * it, so the KEK re-wrap lists the wraps still alive by one Query from now on and never the dead ones.
 */
export const WRAP_DIRECTORY_PARTITION = "WRAPS";
export const wrapDirectoryKey = (expiresAt: string, wrapId: string): Key => ({
  pk: WRAP_DIRECTORY_PARTITION,
  sk: `${expiresAt}#${wrapId}`,
});
