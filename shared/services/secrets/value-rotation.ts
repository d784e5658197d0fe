import { generateSecretValue, matchesGenerator, newRequestToken } from "../../crypto/generate.ts";
import type { AllowedOperation, OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import { ConflictError, NotFoundError, VerificationFailedError } from "../../domain/errors.ts";
import type { RotateResult, RotationEvent, ScheduledRotation } from "../../domain/rotation.ts";
import type { SecretSealer } from "../../domain/sealing.ts";
import { isLive, withNewCurrent } from "../../domain/secret-head.ts";
import { now } from "../../domain/time.ts";
import type { SealedVersion, SecretHead } from "../../domain/types.ts";
import { describeVerifier, type RotationVerifier } from "../../domain/verification.ts";
import type { MetricsRecorder } from "../../observability/metrics.ts";
import type { SecretRepository } from "../../storage/secret-repository.ts";
import type { HeadWriter } from "./head-writer.ts";
import type { VersionLifecycle } from "./version-lifecycle.ts";

/**
 * Rotation of secret values, with Secrets Manager's staging labels: `current`, `pending` and
 * `previous`. Every step is one conditional write of the head (after an idempotent archive copy), so
 * a rotation that dies between steps is resumed by running it again with the same clientRequestToken.
 */
export class ValueRotation implements ScheduledRotation {
  readonly #secrets: SecretRepository;
  readonly #sealer: SecretSealer;
  readonly #gate: OperationGate;
  readonly #heads: HeadWriter;
  readonly #lifecycle: VersionLifecycle;
  readonly #verifier: RotationVerifier;
  readonly #metrics: MetricsRecorder;

  constructor(
    secrets: SecretRepository,
    sealer: SecretSealer,
    gate: OperationGate,
    heads: HeadWriter,
    lifecycle: VersionLifecycle,
    verifier: RotationVerifier,
    metrics: MetricsRecorder,
  ) {
    this.#verifier = verifier;
    this.#metrics = metrics;
    this.#secrets = secrets;
    this.#sealer = sealer;
    this.#gate = gate;
    this.#heads = heads;
    this.#lifecycle = lifecycle;
  }

  async rotate(
    ctx: RequestContext,
    tenantId: string,
    name: string,
    token: string | undefined,
  ): Promise<RotateResult> {
    const operation = await this.#gate.begin(ctx, "secret.rotate", { tenantId, secretName: name });
    const events: RotationEvent[] = [];
    return this.#rotateAudited(operation, tenantId, name, token ?? newRequestToken("manual-"), {
      events,
      adoptInFlight: false,
      createdBy: ctx.principal.actor,
      requestId: ctx.requestId,
    });
  }

  /** The scheduled runner's entry: recorded as the system's own change. */
  rotateScheduled(
    tenantId: string,
    name: string,
    token: string,
    requestId: string,
    events: RotationEvent[],
  ): Promise<RotateResult> {
    const operation = this.#gate.system("secret.rotate", { tenantId, secretName: name }, requestId);
    return this.#rotateAudited(operation, tenantId, name, token, {
      events,
      adoptInFlight: true,
      createdBy: "system",
      requestId,
    });
  }

  #rotateAudited(
    operation: AllowedOperation,
    tenantId: string,
    name: string,
    token: string,
    options: RotateOptions,
  ): Promise<RotateResult> {
    return operation.change(
      () => this.#rotate(tenantId, name, token, options),
      (result) =>
        result.status === "rotated"
          ? { version: result.version, detail: `generated version ${result.version} promoted` }
          : { detail: `rotation due ${result.rotationDueAt}; waiting for an operator's pending value` },
    );
  }

  /**
   * With `adoptInFlight` (the scheduled runner), a rotation left in flight under another token (a
   * manual rotation that died before promoting) is finished rather than refused, so it cannot block
   * every later run: its pending value is tested like any other before it is promoted. Only a pending
   * version marked `generated` (set here, when this service made the value) is adopted.
   */
  async #rotate(
    tenantId: string,
    name: string,
    requested: string,
    { events, adoptInFlight, createdBy, requestId }: RotateOptions,
  ): Promise<RotateResult> {
    const head = await this.#liveHead(tenantId, name);
    const generator = head.rotation?.generator;
    if (generator === undefined) return this.#announceDue(head, events);
    // Only a pending value this rotation generated is its own to test and promote; one a caller wrote,
    // whatever it looks like, waits for that caller's promote: the runner announces the secret as due.
    if (head.pending !== undefined && head.pending.generated !== true) {
      if (adoptInFlight) return this.#announceDue(head, events);
      throw new ConflictError(
        `version ${head.pending.version} of ${name} is pending and was written by a caller, not generated; promote it first`,
      );
    }
    const inFlight = head.pending?.clientRequestToken;
    const token = adoptInFlight && inFlight !== undefined ? inFlight : requested;

    // createSecret: a pending version made with this token, unless it exists or another is in flight.
    let staged = head;
    if (head.current.clientRequestToken === token) {
      return {
        name,
        status: "rotated",
        version: head.current.version,
        previousVersion: head.previousVersion ?? 0,
      };
    }
    if (head.pending === undefined) {
      if ((await this.#secrets.findArchivedByToken(tenantId, name, token)) !== undefined) {
        throw new ConflictError(`clientRequestToken was already used by an earlier rotation of ${name}`);
      }
      staged = await this.#heads.update(tenantId, name, async (fresh, key) => {
        if (fresh.pending !== undefined) return fresh;
        const version = fresh.latestVersion + 1;
        const pending: SealedVersion = {
          version,
          envelope: key.seal(name, version, generateSecretValue(generator)),
          createdAt: now(),
          clientRequestToken: token,
          createdBy,
          generated: true,
        };
        return { ...fresh, pending, latestVersion: version, updatedAt: pending.createdAt };
      });
    }
    const pending = staged.pending;
    if (pending === undefined || pending.clientRequestToken !== token || pending.generated !== true) {
      throw new ConflictError(
        `a rotation of ${name} is already in flight (version ${pending?.version} pending); finish it first`,
      );
    }
    // setSecret has nothing to do: the service is the only holder of a generated value.
    // testSecret: the pending value must open and be what the generator makes.
    if (!matchesGenerator(generator, await this.#sealer.open(tenantId, name, pending))) {
      throw new ConflictError(
        `pending version ${pending.version} of ${name} failed its test; it was not promoted`,
      );
    }
    // The policy's verification hook, if any, must pass before anything is promoted. On schedule the
    // run's failure accounting counts it; on a request it is counted here.
    await this.#verify(staged, pending.version, !adoptInFlight);
    // finishSecret: pending becomes current, current becomes previous.
    const finished = await this.#promote(tenantId, name, pending.version);
    await this.#lifecycle.prune(tenantId, name, requestId);
    events.push({
      detailType: "Secret Rotated",
      detail: { tenantId, secretName: name, version: finished.current.version },
    });
    return {
      name,
      status: "rotated",
      version: finished.current.version,
      previousVersion: finished.previousVersion ?? 0,
    };
  }

  /** Bring-your-own: mark it due and say so once per due date; an operator writes the pending value. */
  async #announceDue(head: SecretHead, events: RotationEvent[]): Promise<RotateResult> {
    const at = now();
    const dueAt = head.rotation?.dueAt !== undefined && head.rotation.dueAt <= at ? head.rotation.dueAt : at;
    if (head.rotation?.notifiedDueAt === dueAt && head.rotation.dueAt === dueAt) {
      return { name: head.name, status: "awaiting_value", rotationDueAt: dueAt };
    }
    const updated = await this.#heads.update(head.tenantId, head.name, (fresh) => ({
      ...fresh,
      rotation: { ...fresh.rotation, dueAt, notifiedDueAt: dueAt },
    }));
    events.push({
      detailType: "Secret Rotation Due",
      detail: {
        tenantId: head.tenantId,
        secretName: head.name,
        rotationDueAt: dueAt,
        version: updated.current.version,
      },
    });
    return { name: head.name, status: "awaiting_value", rotationDueAt: dueAt };
  }

  async promote(ctx: RequestContext, tenantId: string, name: string, version: number | undefined) {
    const operation = await this.#gate.begin(ctx, "secret.promote", { tenantId, secretName: name });
    return operation.change(
      async () => {
        const head = await this.#liveHead(tenantId, name);
        // Promoting what is already current is the retry of a promotion that succeeded.
        if (head.pending === undefined && version !== undefined && head.current.version === version) {
          return labels(head);
        }
        if (head.pending === undefined)
          throw new ConflictError(`secret ${name} has no pending version to promote`);
        if (version !== undefined && version !== head.pending.version) {
          throw new ConflictError(
            `version ${version} of ${name} is not pending (version ${head.pending.version} is)`,
          );
        }
        await this.#verify(head, head.pending.version, true);
        const promoted = await this.#promote(tenantId, name, head.pending.version);
        await this.#lifecycle.prune(tenantId, name, ctx.requestId);
        return labels(promoted);
      },
      (result) => ({ version: result.current }),
    );
  }

  /** Makes `version`, the previous one, current again; once it is current, a retry changes nothing. */
  async rollback(ctx: RequestContext, tenantId: string, name: string, version: number) {
    const operation = await this.#gate.begin(ctx, "secret.rollback", { tenantId, secretName: name });
    return operation.change(
      async () => {
        const head = await this.#liveHead(tenantId, name);
        if (head.pending !== undefined) {
          throw new ConflictError(
            `secret ${name} has version ${head.pending.version} pending; promote it first`,
          );
        }
        if (head.current.version === version) return labels(head);
        const previous = head.previousVersion;
        if (previous === undefined)
          throw new ConflictError(`secret ${name} has no previous version to roll back to`);
        if (previous !== version) {
          throw new ConflictError(
            `version ${version} of ${name} is not the previous version (version ${previous} is)`,
          );
        }
        const archived = await this.#secrets.getArchivedVersion(tenantId, name, previous);
        if (archived === undefined)
          throw new NotFoundError(`version ${previous} of ${name} is not in the archive`);
        const value = await this.#sealer.open(tenantId, name, archived);
        const rolledBack = await this.#heads.update(tenantId, name, async (fresh, key) => {
          // A concurrent identical rollback got there first: this one is its retry, and a no-op.
          if (fresh.pending === undefined && fresh.current.version === version) return fresh;
          if (fresh.current.version !== head.current.version || fresh.pending !== undefined) {
            throw new ConflictError(`secret ${name} changed during the rollback; read it and retry`);
          }
          await this.#secrets.archive(tenantId, name, fresh.current);
          // Re-sealed under the current DEK, so a rollback never brings an old DEK back into use.
          const current = { ...archived, envelope: key.seal(name, previous, value) };
          return { ...fresh, current, previousVersion: fresh.current.version, updatedAt: now() };
        });
        return labels(rolledBack);
      },
      (result) => ({ version: result.current }),
    );
  }

  async #promote(tenantId: string, name: string, pendingVersion: number): Promise<SecretHead> {
    return this.#heads.update(tenantId, name, async (fresh) => {
      if (fresh.pending === undefined && fresh.current.version === pendingVersion) return fresh;
      if (fresh.pending?.version !== pendingVersion) {
        throw new ConflictError(`version ${pendingVersion} of ${name} is no longer pending`);
      }
      await this.#secrets.archive(tenantId, name, fresh.current);
      return withNewCurrent(fresh, tenantId, name, fresh.pending, now());
    });
  }

  /**
   * Asks the rotation policy's verifier about the pending version, with its coordinates only. A
   * failure leaves the version pending and throws 409 `verification_failed`, which the operation
   * records as its failed outcome; `count` adds it to RotationFailures.
   */
  async #verify(head: SecretHead, pendingVersion: number, count: boolean): Promise<void> {
    const spec = head.rotation?.verifier;
    if (spec === undefined) return;
    const result = await this.#verifier.verify(spec, {
      tenant: head.tenantId,
      name: head.name,
      pendingVersion,
    });
    if (result.ok) return;
    if (count) this.#metrics.increment("RotationFailures");
    throw new VerificationFailedError(
      `pending version ${pendingVersion} of ${head.name} failed verification by ${describeVerifier(spec)}: ${result.detail}; it stays pending`,
    );
  }

  async #liveHead(tenantId: string, name: string): Promise<SecretHead> {
    const head = await this.#secrets.getHead(tenantId, name);
    if (!isLive(head)) throw new NotFoundError(`secret ${name} does not exist in tenant ${tenantId}`);
    return head;
  }
}

interface RotateOptions {
  readonly events: RotationEvent[];
  readonly adoptInFlight: boolean;
  /** Who the new version is recorded as made by: the caller's token id, or `system`. */
  readonly createdBy: string;
  readonly requestId: string;
}

function labels(head: SecretHead) {
  return {
    name: head.name,
    current: head.current.version,
    ...(head.previousVersion === undefined ? {} : { previous: head.previousVersion }),
    ...(head.pending === undefined ? {} : { pending: head.pending.version }),
  };
}
