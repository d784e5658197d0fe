import type { AuditTarget, Authenticator } from "../../domain/audit-trail.ts";
import type { Credentials } from "../../domain/context.ts";
import type { Principal } from "../../domain/types.ts";
import type { BindingService } from "./binding-service.ts";
import type { TokenService } from "./token-service.ts";

/**
 * Every route's authenticator: a bearer header goes to the tokens, an IAM identity to the bindings.
 * Which kind a request offers is fixed by the route set it arrived on (functions/api/credentials.ts),
 * never by the request, so a bearer route can never be answered on an IAM identity, nor the reverse.
 */
export class CallerAuthentication implements Authenticator {
  readonly #tokens: TokenService;
  readonly #bindings: BindingService;

  constructor(tokens: TokenService, bindings: BindingService) {
    this.#tokens = tokens;
    this.#bindings = bindings;
  }

  authenticate(credentials: Credentials, requestId: string, target: AuditTarget): Promise<Principal> {
    return credentials.kind === "iam"
      ? this.#bindings.authenticate(credentials.identity, requestId, target)
      : this.#tokens.authenticate(credentials.authorization, requestId, target);
  }
}
