import type { Authenticator, OperationGate } from "../../domain/audit-trail.ts";
import type { Caller, RequestContext } from "../../domain/context.ts";
import {
  ConflictError,
  DecryptError,
  DekRetiredError,
  NotFoundError,
  StrongboxError,
  TenantDeletedError,
  VersionDestroyedError,
} from "../../domain/errors.ts";
import {
  type CredentialRef,
  parseCredentialRef,
  type ReferenceResolver,
  type ResolvedReference,
} from "../../domain/references.ts";
import type { PutSecretInput } from "../../domain/schemas.ts";
import type { SecretSealer } from "../../domain/sealing.ts";
import { isLive, withNewCurrent } from "../../domain/secret-head.ts";
import { now } from "../../domain/time.ts";
import type {
  Page,
  SealedVersion,
  SecretHead,
  SecretSummary,
  SecretValue,
  Stage,
} from "../../domain/types.ts";
import type { SecretRepository } from "../../storage/secret-repository.ts";
import type { TenantRepository } from "../../storage/tenant-repository.ts";
import type { HeadWriter } from "./head-writer.ts";
import type { VersionLifecycle } from "./version-lifecycle.ts";

/**
 * What a caching client needs to know when the value will change: the secret's due date, and a
 * pending version waiting to be promoted.
 */
function rotationHints(head: SecretHead | undefined): Pick<SecretValue, "rotationDueAt" | "pendingVersion"> {
  return {
    ...(head?.rotation?.dueAt === undefined ? {} : { rotationDueAt: head.rotation.dueAt }),
    ...(head?.pending === undefined ? {} : { pendingVersion: head.pending.version }),
  };
}

/** Which version a read asks for: a number, a staging label, or (neither) the current one. */
export interface VersionSelector {
  readonly version?: number | undefined;
  readonly stage?: Stage | undefined;
}

export class SecretService {
  readonly #secrets: SecretRepository;
  readonly #sealer: SecretSealer;
  readonly #tokens: Authenticator;
  readonly #gate: OperationGate;
  readonly #heads: HeadWriter;
  readonly #lifecycle: VersionLifecycle;
  readonly #tenants: TenantRepository;
  readonly #references: ReferenceResolver;

  constructor(
    secrets: SecretRepository,
    sealer: SecretSealer,
    tokens: Authenticator,
    gate: OperationGate,
    heads: HeadWriter,
    lifecycle: VersionLifecycle,
    tenants: TenantRepository,
    references: ReferenceResolver,
  ) {
    this.#tenants = tenants;
    this.#references = references;
    this.#secrets = secrets;
    this.#sealer = sealer;
    this.#tokens = tokens;
    this.#gate = gate;
    this.#heads = heads;
    this.#lifecycle = lifecycle;
  }

  async write(
    ctx: RequestContext,
    tenantId: string,
    name: string,
    input: PutSecretInput,
  ): Promise<{ name: string; version: number }> {
    // A malformed reference is bad input, refused before anything is recorded or asked of AWS.
    const ref = input.ref === undefined ? undefined : parseCredentialRef(input.ref);
    const operation = await this.#gate.begin(ctx, "secret.write", {
      tenantId,
      secretName: name,
      ...(input.stage === "pending" ? { detail: "stage pending" } : {}),
      ...(ref === undefined ? {} : { detail: `reference ${ref.uri}` }),
    });
    return operation.change(
      async () => {
        // The referenced secret must exist for this role; its rotation date becomes the listing's.
        const described = ref === undefined ? undefined : await this.#references.describe(ref);
        const content: WriteContent =
          ref === undefined
            ? { text: input.value ?? "" }
            : {
                text: ref.uri,
                reference: ref.uri,
                ...(described?.rotationDueAt === undefined ? {} : { rotationDueAt: described.rotationDueAt }),
              };
        const { result, endedHistory, bounded } = await this.#commitWrite(
          tenantId,
          name,
          input,
          content,
          ctx.principal.actor,
        );
        // The history a delete ended goes once the new one is committed; until then it was unreadable.
        if (endedHistory !== undefined)
          await this.#lifecycle.removeHistoryBefore(tenantId, name, endedHistory);
        if (bounded === true) await this.#lifecycle.prune(tenantId, name, ctx.requestId);
        return result;
      },
      ({ version }) => ({ version }),
    );
  }

  /**
   * The hot path. It authenticates the caller itself so that the token and the secret's head are
   * looked up together, in one round trip; the head is used only once the token checks out.
   */
  async read(
    caller: Caller,
    tenantId: string,
    name: string,
    reason: string,
    selector: VersionSelector = {},
  ): Promise<SecretValue> {
    const target = { tenantId, action: "secret.read", secretName: name } as const;
    // The tenant item joins the same batched read: a deleted tenant refuses every read from the instant
    // its DEKs were destroyed, even on an instance that still holds one of them in its cache.
    const [principal, fetched, owner] = await Promise.allSettled([
      this.#tokens.authenticate(caller.credentials, caller.requestId, target),
      this.#secrets.getHead(tenantId, name),
      this.#tenants.get(tenantId),
    ]);
    if (principal.status === "rejected") throw principal.reason;
    const ctx = { requestId: caller.requestId, principal: principal.value };
    const operation = await this.#gate.begin(ctx, "secret.read", { tenantId, secretName: name });
    if (fetched.status === "rejected") throw fetched.reason;
    if (owner.status === "rejected") throw owner.reason;
    if (owner.value?.deletedAt !== undefined) {
      await operation.failed({ reason, detail: "tenant_deleted" });
      throw new TenantDeletedError(`tenant ${tenantId} was deleted`);
    }
    let head = fetched.value;
    for (let attempt = 0; ; attempt += 1) {
      const found = await this.#findVersion(head, selector);
      if (found === "destroyed") {
        await operation.failed({
          reason,
          detail: "version_destroyed",
          ...(selector.version === undefined ? {} : { version: selector.version }),
        });
        throw new VersionDestroyedError(`secret ${name}${describeSelector(selector)} was destroyed`);
      }
      const sealed = found;
      if (sealed === undefined) {
        await operation.failed({ reason, detail: "not_found" });
        throw new NotFoundError(
          `secret ${name}${describeSelector(selector)} does not exist in tenant ${tenantId}`,
        );
      }
      let value: string;
      try {
        value = await this.#sealer.open(tenantId, name, sealed);
      } catch (error) {
        // The sweep re-encrypted the item and its old DEK was retired after it was read: read it again.
        if (error instanceof DekRetiredError && attempt === 0) {
          head = await this.#secrets.getHead(tenantId, name);
          continue;
        }
        const detail = error instanceof StrongboxError ? error.code : "internal_error";
        await operation.failed({ version: sealed.version, reason, detail });
        throw error;
      }
      if (sealed.reference !== undefined) {
        const resolved = await this.#resolve(sealed, value, async (detail) => {
          await operation.failed({ version: sealed.version, reason, detail });
        });
        await operation.succeeded({
          version: sealed.version,
          reason,
          detail: `reference ${sealed.reference}`,
        });
        return {
          name,
          version: sealed.version,
          value: resolved.value,
          createdAt: sealed.createdAt,
          reference: sealed.reference,
          ...rotationHints(head),
          // The referenced secret's own rotation is when a cached copy of its value goes stale.
          ...(resolved.rotationDueAt === undefined ? {} : { rotationDueAt: resolved.rotationDueAt }),
        };
      }
      // The value is returned only once its read is on the record.
      await operation.succeeded({ version: sealed.version, reason });
      return { name, version: sealed.version, value, createdAt: sealed.createdAt, ...rotationHints(head) };
    }
  }

  async list(
    ctx: RequestContext,
    tenantId: string,
    limit: number,
    cursor?: string,
  ): Promise<Page<SecretSummary>> {
    const operation = await this.#gate.begin(ctx, "secret.list", { tenantId });
    const page = await this.#secrets.list(tenantId, limit, cursor);
    await operation.succeeded();
    return page;
  }

  async delete(ctx: RequestContext, tenantId: string, name: string): Promise<void> {
    const operation = await this.#gate.begin(ctx, "secret.delete", { tenantId, secretName: name });
    await operation.change(async () => {
      if (!(await this.#secrets.softDelete(tenantId, name, now()))) {
        throw new NotFoundError(`secret ${name} does not exist in tenant ${tenantId}`);
      }
    });
  }

  /**
   * Resolves a reference version. The sealed text must be the stored reference, so a reference cannot
   * be swapped in the table without the KEK; any failure is recorded before it is answered.
   */
  async #resolve(
    sealed: SealedVersion,
    opened: string,
    failed: (detail: string) => Promise<void>,
  ): Promise<ResolvedReference> {
    let ref: CredentialRef;
    try {
      if (opened !== sealed.reference) throw new DecryptError("a reference does not match its sealed copy");
      ref = parseCredentialRef(opened);
    } catch {
      await failed("decrypt_failed");
      throw new DecryptError(
        `version ${sealed.version} holds a reference that does not match its sealed copy`,
      );
    }
    try {
      return await this.#references.resolve(ref);
    } catch (error) {
      await failed(error instanceof StrongboxError ? error.code : "internal_error");
      throw error;
    }
  }

  /**
   * A retried write (same clientRequestToken) answers with the version the token made, if its value is
   * the same; the same token with another value is a conflict, as in Secrets Manager's PutSecretValue.
   */
  async #replayed(
    tenantId: string,
    name: string,
    head: SecretHead | undefined,
    token: string,
    value: string,
  ): Promise<{ name: string; version: number } | undefined> {
    // A deleted secret's history is not this write's to replay.
    if (!isLive(head)) return undefined;
    const inline = [head.current, head.pending].find((sealed) => sealed?.clientRequestToken === token);
    const archived =
      inline === undefined ? await this.#secrets.findArchivedByToken(tenantId, name, token) : undefined;
    if (archived !== undefined && archived.version < (head.historyStart ?? 1)) return undefined;
    if (archived !== undefined && archived.sealed === undefined) {
      throw new ConflictError(
        `clientRequestToken was already used for version ${archived.version} of ${name}, since destroyed`,
      );
    }
    const made = inline ?? archived?.sealed;
    if (made === undefined) return undefined;
    if ((await this.#sealer.open(tenantId, name, made)) === value) return { name, version: made.version };
    throw new ConflictError(
      `clientRequestToken was already used for version ${made.version} of ${name} with a different value`,
    );
  }

  /**
   * A cas writer whose conditional write lost only to a revision bump (a re-seal, a label or policy
   * change) tries again: the next attempt still fails with 409 if the version it named has moved on.
   */
  #commitWrite(
    tenantId: string,
    name: string,
    input: PutSecretInput,
    content: WriteContent,
    createdBy: string,
  ): Promise<{ result: { name: string; version: number }; endedHistory?: number; bounded?: boolean }> {
    return this.#heads.write(tenantId, name, async (head, key) => {
      if (input.clientRequestToken !== undefined) {
        const replay = await this.#replayed(tenantId, name, head, input.clientRequestToken, content.text);
        if (replay !== undefined) return { done: { result: replay } };
      }
      this.#checkCas(input.cas, head, name);
      if (isLive(head) && head.pending !== undefined) {
        throw new ConflictError(
          `secret ${name} has version ${head.pending.version} pending; promote it before writing another version`,
        );
      }
      const version = (head?.latestVersion ?? 0) + 1;
      const sealed: SealedVersion = {
        version,
        envelope: key.seal(name, version, content.text),
        createdAt: now(),
        ...(input.clientRequestToken === undefined ? {} : { clientRequestToken: input.clientRequestToken }),
        createdBy,
        ...(content.reference === undefined ? {} : { reference: content.reference }),
      };
      const result = { name, version };
      if (input.stage === "pending") {
        if (!isLive(head)) {
          throw new NotFoundError(`secret ${name} has no current version to stage a pending one beside`);
        }
        const next = withMaxVersions(
          { ...head, pending: sealed, latestVersion: version, updatedAt: sealed.createdAt },
          input.maxVersions,
        );
        return { next, result: { result, bounded: next.maxVersions !== undefined } };
      }
      if (head !== undefined && !isLive(head)) {
        // A write over a deleted secret starts a new history: no label, policy or version carries over,
        // and version numbers go on from the old history's so no archived key is ever reused.
        const fresh = withReferenceDue(
          { ...withNewCurrent(undefined, tenantId, name, sealed, sealed.createdAt), historyStart: version },
          content,
        );
        const next = withMaxVersions(fresh, input.maxVersions);
        return { next, result: { result, endedHistory: version, bounded: next.maxVersions !== undefined } };
      }
      // Archive before the head moves on, so the version being replaced stays readable throughout.
      if (head !== undefined) await this.#secrets.archive(tenantId, name, head.current);
      const next = withMaxVersions(
        withReferenceDue(withNewCurrent(head, tenantId, name, sealed, sealed.createdAt), content),
        input.maxVersions,
      );
      return { next, result: { result, bounded: next.maxVersions !== undefined } };
    });
  }

  #checkCas(cas: number | undefined, head: SecretHead | undefined, name: string): void {
    if (cas === undefined) return;
    if (cas === 0 && isLive(head)) {
      throw new ConflictError(`secret ${name} already exists (cas 0 means create only)`);
    }
    if (cas > 0 && (!isLive(head) || head.current.version !== cas)) {
      const actual = isLive(head) ? `version ${head.current.version}` : "no live version";
      throw new ConflictError(`secret ${name} has ${actual}, not version ${cas}`);
    }
  }

  async #findVersion(
    head: SecretHead | undefined,
    selector: VersionSelector,
  ): Promise<SealedVersion | "destroyed" | undefined> {
    if (!isLive(head)) return undefined;
    if (selector.stage === "pending") return head.pending;
    const requested = selector.stage === "previous" ? head.previousVersion : selector.version;
    if (selector.stage === "previous" && requested === undefined) return undefined;
    if (requested === undefined || requested === head.current.version) return head.current;
    if (requested === head.pending?.version) return head.pending;
    if (requested > head.latestVersion || requested < (head.historyStart ?? 1)) return undefined;
    const entry = await this.#secrets.getArchivedEntry(head.tenantId, head.name, requested);
    if (entry !== undefined && entry.sealed === undefined) return "destroyed";
    return entry?.sealed;
  }
}

/** What a write seals: a value, or a reference's text with the referenced secret's rotation date. */
interface WriteContent {
  readonly text: string;
  readonly reference?: string;
  readonly rotationDueAt?: string;
}

/** The reference's rotation date follows the current version: a value written over a reference clears it. */
function withReferenceDue(head: SecretHead, content: WriteContent): SecretHead {
  const { referenceRotationDueAt: _old, ...rest } = head;
  return content.rotationDueAt === undefined
    ? rest
    : { ...rest, referenceRotationDueAt: content.rotationDueAt };
}

/** The head with the write's `maxVersions` applied: a number sets it, null lifts it, absent keeps it. */
function withMaxVersions(head: SecretHead, maxVersions: number | null | undefined): SecretHead {
  if (maxVersions === undefined) return head;
  const { maxVersions: _old, ...rest } = head;
  return maxVersions === null ? rest : { ...rest, maxVersions };
}

function describeSelector(selector: VersionSelector): string {
  if (selector.stage !== undefined) return ` (stage ${selector.stage})`;
  return selector.version === undefined ? "" : ` version ${selector.version}`;
}
