import { randomUUID } from "node:crypto";

/** A fresh audit record id: unique across instances, so the request path's write contends with no one. */
export const newRecordId = (): string => randomUUID();
