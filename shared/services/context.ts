import type { Principal } from "../domain/types.ts";

/** Who is asking and under which request id; every use case takes one. */
export interface RequestContext {
  readonly requestId: string;
  readonly principal: Principal;
}

export const now = (): string => new Date().toISOString();
