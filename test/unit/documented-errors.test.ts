import { expect, it } from "vitest";
import { documentedErrors, isTolerated } from "../../testing/documented-errors.ts";

it("the soak tolerates exactly the documented 4xx and 503 codes from docs/api.md", () => {
  const documented = documentedErrors();
  expect(documented.get(409)).toContain("conflict");
  expect(documented.get(413)).toEqual(new Set(["payload_too_large", "audit_record_too_large"]));
  expect(documented.get(503)).toContain("dek_retired");
  expect(isTolerated(documented, 404, "not_found")).toBe(true);
  expect(isTolerated(documented, 503, "store_unavailable")).toBe(true);
  // Documented, but a 500 is a defect under load all the same.
  expect(isTolerated(documented, 500, "internal_error")).toBe(false);
  expect(isTolerated(documented, 500, "decrypt_failed")).toBe(false);
  // A real status with a code the table does not give it, and a code under the wrong status.
  expect(isTolerated(documented, 503, "made_up")).toBe(false);
  expect(isTolerated(documented, 400, "conflict")).toBe(false);
});
