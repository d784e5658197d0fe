import type { Principal } from "./types.ts";

/** Who is asking and under which request id; every use case takes one. */
export interface RequestContext {
  readonly requestId: string;
  readonly principal: Principal;
}

/** A request whose bearer token is not yet verified, for use cases that verify it themselves. */
export interface Caller {
  readonly requestId: string;
  readonly authorization: string | undefined;
}
