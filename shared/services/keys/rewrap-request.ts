import type { Keyring } from "../../crypto/keyring.ts";
import type { OperationGate } from "../../domain/audit-trail.ts";
import type { RequestContext } from "../../domain/context.ts";
import type { RewrapDispatch, RewrapRequest } from "../../domain/rotation.ts";
import type { CheckpointRepository } from "../../storage/checkpoint-repository.ts";
import { activeKekId, newRewrap, REWRAP, readRewrapState } from "./kek-rewrap.ts";

/**
 * `POST /v1/kek/rewrap`: starts a re-wrap under the active KEK (or continues an unfinished one under
 * it) and hands the work on. The request never re-wraps anything itself: on AWS the API role may not
 * ReEncrypt, so the rotation function does it, and `GET /v1/kek` shows how far it got. Its audit
 * record is therefore the request being accepted, not a finished re-wrap.
 */
export class RewrapRequests {
  readonly #keyring: Keyring;
  readonly #checkpoints: CheckpointRepository;
  readonly #gate: OperationGate;
  readonly #dispatch: RewrapDispatch;

  constructor(
    keyring: Keyring,
    checkpoints: CheckpointRepository,
    gate: OperationGate,
    dispatch: RewrapDispatch,
  ) {
    this.#keyring = keyring;
    this.#checkpoints = checkpoints;
    this.#gate = gate;
    this.#dispatch = dispatch;
  }

  async request(ctx: RequestContext): Promise<RewrapRequest> {
    const operation = await this.#gate.begin(ctx, "kek.rewrap");
    return operation.change(
      async () => {
        const active = await activeKekId(this.#keyring);
        const existing = await readRewrapState(this.#checkpoints);
        if (existing !== undefined && existing.phase !== "done" && existing.targetKekId === active) {
          await this.#dispatch.request(ctx.requestId);
          return { started: false, state: existing };
        }
        // Restarting drops any runner's lease on the old re-wrap at once.
        const state = newRewrap(active);
        await this.#checkpoints.start(REWRAP, state);
        await this.#dispatch.request(ctx.requestId);
        return { started: true, state };
      },
      (request) => ({
        detail: `re-wrap under ${request.state.targetKekId} ${request.started ? "started" : "continued"} at pass ${request.state.pass}; handed to the rotation work`,
      }),
    );
  }
}
