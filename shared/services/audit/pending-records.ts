import { type ChainKeys, chainHash, chainMac, chainMacMatches } from "../../crypto/chain-keys.ts";
import { newRecordId } from "../../crypto/record-id.ts";
import { canonicalRecord, isPendingRecordShape, type PendingAuditRecord } from "../../domain/audit-chain.ts";
import type { AuditEvent } from "../../domain/types.ts";

/**
 * What a pending record's MAC covers: its hash, marked so that it can never be taken for a chain
 * record's hash (those are bare hex), under the scope. A chain MAC is never a pending MAC either way.
 */
const pendingInput = (record: Omit<PendingAuditRecord, "mac">) =>
  `pending:${chainHash(canonicalRecord(record))}`;

/** The event as the request path stores it: a fresh id and a MAC under the day's key (cached: no KMS call warm). */
export async function sealPending(keys: ChainKeys, event: AuditEvent): Promise<PendingAuditRecord> {
  const key = await keys.current(new Date(event.time));
  const body = { ...event, id: newRecordId(), macKeyRef: key.ref };
  return { ...body, mac: chainMac(key.key, event.tenantId, pendingInput(body)) };
}

/** The stored value as a pending record, when it is one this service's keys made; undefined otherwise. */
export async function openPending(keys: ChainKeys, value: unknown): Promise<PendingAuditRecord | undefined> {
  if (!isPendingRecordShape(value)) return undefined;
  const { mac, ...body } = value;
  const key = await keys.forRef(body.macKeyRef);
  if (key === undefined || !chainMacMatches(key, body.tenantId, pendingInput(body), mac)) return undefined;
  return value;
}
