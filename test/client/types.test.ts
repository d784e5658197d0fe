import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderTypes, TYPES_FILE } from "../../client/scripts/generate-types.ts";
import { ERROR_CLASSES, UnexpectedResponseError } from "../../client/src/errors.ts";
import { createApp } from "../../functions/api/app.ts";
import { ERROR_CODES } from "../../functions/api/openapi/error-codes.ts";
import { type Harness, startHarness } from "../../testing/harness.ts";

// The client is typed from the document the API serves: the checked-in types must be what
// openapi-typescript makes of today's document, and its error classes must cover every code in it.

let h: Harness;
let document: any;

beforeAll(async () => {
  h = await startHarness();
  // As `npm start` serves it (with /metrics), which is where `npm run client:types` reads it.
  document = await (await createApp(h.runtime, { exposeMetrics: true }).request("/openapi.json")).json();
});
afterAll(() => h.close());

describe("the client's types", () => {
  it("are what openapi-typescript makes of the served document (else: npm start, then npm run client:types)", async () => {
    expect(readFileSync(TYPES_FILE, "utf8")).toBe(await renderTypes(document));
  });

  it("drift shows: a changed document renders other types", async () => {
    const changed = structuredClone(document);
    changed.paths["/v1/tenants/{tenantId}/secrets/{name}"].get.operationId = "readSecretRenamed";
    expect(await renderTypes(changed)).not.toBe(readFileSync(TYPES_FILE, "utf8"));
  });

  it("has one error class per code in the contract, each carrying its own code", () => {
    expect(Object.keys(ERROR_CLASSES).sort()).toEqual([...document.components.schemas.ErrorCode.enum].sort());
    expect(Object.keys(ERROR_CLASSES).sort()).toEqual([...ERROR_CODES].sort());
    const seen = new Set<unknown>();
    for (const [code, ErrorClass] of Object.entries(ERROR_CLASSES)) {
      const error = new ErrorClass({ status: 400, message: "m", requestId: "r" });
      expect(error.code).toBe(code);
      expect(seen.has(ErrorClass)).toBe(false);
      seen.add(ErrorClass);
    }
    expect(new UnexpectedResponseError({ status: 502, message: "m", requestId: undefined }).code).toBe(
      "unexpected_response",
    );
  });
});
