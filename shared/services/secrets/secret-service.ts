import type { Authenticator, OperationGate } from "../../domain/audit-trail.ts";
import type { Caller, RequestContext } from "../../domain/context.ts";
import { ConflictError, DekRetiredError, NotFoundError, StrongboxError } from "../../domain/errors.ts";
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
import type { HeadWriter } from "./head-writer.ts";

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

  constructor(
    secrets: SecretRepository,
    sealer: SecretSealer,
    tokens: Authenticator,
    gate: OperationGate,
    heads: HeadWriter,
  ) {
    this.#secrets = secrets;
    this.#sealer = sealer;
    this.#tokens = tokens;
    this.#gate = gate;
    this.#heads = heads;
  }

  async write(
    ctx: RequestContext,
    tenantId: string,
    name: string,
    input: PutSecretInput,
  ): Promise<{ name: string; version: number }> {
    const operation = await this.#gate.begin(ctx, "secret.write", {
      tenantId,
      secretName: name,
      ...(input.stage === "pending" ? { detail: "stage pending" } : {}),
    });
    return operation.change(
      () => this.#commitWrite(tenantId, name, input),
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
    const [principal, fetched] = await Promise.allSettled([
      this.#tokens.authenticate(caller.credentials, caller.requestId, target),
      this.#secrets.getHead(tenantId, name),
    ]);
    if (principal.status === "rejected") throw principal.reason;
    const ctx = { requestId: caller.requestId, principal: principal.value };
    const operation = await this.#gate.begin(ctx, "secret.read", { tenantId, secretName: name });
    if (fetched.status === "rejected") throw fetched.reason;
    let head = fetched.value;
    for (let attempt = 0; ; attempt += 1) {
      const sealed = await this.#findVersion(head, selector);
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
    const inline = [head?.current, head?.pending].find((sealed) => sealed?.clientRequestToken === token);
    const made = inline ?? (await this.#secrets.findArchivedByToken(tenantId, name, token));
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
  ): Promise<{ name: string; version: number }> {
    return this.#heads.write(tenantId, name, async (head, key) => {
      if (input.clientRequestToken !== undefined) {
        const replay = await this.#replayed(tenantId, name, head, input.clientRequestToken, input.value);
        if (replay !== undefined) return { done: replay };
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
        envelope: key.seal(name, version, input.value),
        createdAt: now(),
        ...(input.clientRequestToken === undefined ? {} : { clientRequestToken: input.clientRequestToken }),
      };
      const result = { name, version };
      if (input.stage === "pending") {
        if (!isLive(head)) {
          throw new NotFoundError(`secret ${name} has no current version to stage a pending one beside`);
        }
        return {
          next: { ...head, pending: sealed, latestVersion: version, updatedAt: sealed.createdAt },
          result,
        };
      }
      // Archive before the head moves on, so the version being replaced stays readable throughout.
      if (head !== undefined) await this.#secrets.archive(tenantId, name, head.current);
      return { next: withNewCurrent(head, tenantId, name, sealed, sealed.createdAt), result };
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
  ): Promise<SealedVersion | undefined> {
    if (!isLive(head)) return undefined;
    if (selector.stage === "pending") return head.pending;
    const requested = selector.stage === "previous" ? head.previousVersion : selector.version;
    if (selector.stage === "previous" && requested === undefined) return undefined;
    if (requested === undefined || requested === head.current.version) return head.current;
    if (requested === head.pending?.version) return head.pending;
    if (requested > head.latestVersion) return undefined;
    return this.#secrets.getArchivedVersion(head.tenantId, head.name, requested);
  }
}

function describeSelector(selector: VersionSelector): string {
  if (selector.stage !== undefined) return ` (stage ${selector.stage})`;
  return selector.version === undefined ? "" : ` version ${selector.version}`;
}
