import type { Credentials, RequestContext } from "./context.ts";
import type { AuditAction, Operation } from "./operations.ts";
import type { AuditEvent, Principal } from "./types.ts";

/** An audit record as a use case writes it; the trail stamps the time. */
export type AuditEntry = Omit<AuditEvent, "time">;
/** What a refused request tried: recorded against this scope, action and secret. */
export type AuditTarget = Pick<AuditEntry, "tenantId" | "action" | "secretName">;
/** What the outcome record of an operation adds to the entry its attempt had. */
export type OutcomeFields = Pick<AuditEntry, "version" | "detail" | "reason">;

/** Appends to the audit trail. */
export interface AuditTrail {
  /** Fails closed: a rejection means the record is not in the trail, so nothing may be answered. */
  record(entry: AuditEntry): Promise<void>;
  /** For denials and failures, whose caller gets an error either way. */
  recordBestEffort(entry: AuditEntry): Promise<void>;
}

/** Records refused requests, collapsing repeats by one actor so a guessing run cannot flood the trail. */
export interface DenialRecorder {
  deny(
    target: AuditTarget,
    requestId: string,
    who: Pick<AuditEntry, "actor" | "role"> & {
      /** For an anonymous caller: the id it presented names a stored token, so it is no guess to collapse. */
      readonly stored?: boolean;
    },
    detail?: string,
  ): Promise<void>;
}

/** Where an operation acts: a tenant (absent for system-scope operations), a secret, and what it asks. */
export interface OperationTarget {
  readonly tenantId?: string;
  readonly secretName?: string;
  /** What the attempt record says of the request, such as the role of a token being minted. */
  readonly detail?: string;
}

/** An operation the gate let through: it records how the operation goes, under one entry. */
export interface AllowedOperation {
  /**
   * Runs a change between two records. The attempt is written first and fails closed: if it cannot
   * be written, nothing is changed. The outcome is best effort, since the change has then happened and
   * its attempt is already on the record.
   */
  change<T>(run: () => Promise<T>, describe?: (result: T) => OutcomeFields): Promise<T>;
  /** Records that a read succeeded; its answer goes out only once this resolves (fail closed). */
  succeeded(fields?: OutcomeFields): Promise<void>;
  /** Records that it failed, best effort. */
  failed(fields: OutcomeFields): Promise<void>;
}

/** Every use case starts here: the operation is named once, and the gate reads the rest from the table. */
export interface OperationGate {
  /** Lets the caller's operation through, or counts, records and refuses it. */
  begin(ctx: RequestContext, operation: Operation, target?: OperationTarget): Promise<AllowedOperation>;
  /** The service's own work, such as a sweep or a scheduled rotation, recorded as the system actor. */
  system(operation: AuditAction, target: OperationTarget, requestId: string): AllowedOperation;
}

/** Turns a request's credentials into a principal, recording a refusal against what it tried. */
export interface Authenticator {
  authenticate(credentials: Credentials, requestId: string, target: AuditTarget): Promise<Principal>;
}
