import { describe, expect, it } from "vitest";
import { documentedErrors } from "../../testing/documented-errors.ts";
import { judgeSoak, type SoakEvidence } from "../../testing/soak.ts";

const MiB = 2 ** 20;
const flat = Array.from({ length: 20 }, (_, i) => ({ atS: i, bytes: 150 * MiB, server: 2 }));
const clean: SoakEvidence = {
  documented: documentedErrors(),
  errors: { "409 conflict": 3, "503 dek_retired": 1 },
  acknowledged: 100,
  readBack: 100,
  readMismatches: 0,
  chains: [
    { scope: "soak-0", intact: true },
    { scope: "_system", intact: true },
  ],
  rewrapPhase: "done",
  rss: flat,
};

describe("the soak's checks", () => {
  it("pass a clean run with documented errors only", () => {
    expect(judgeSoak(clean).failures).toEqual([]);
  });

  it.each([
    ["a lost write", { readBack: 99 }, /1 of 100 acknowledged writes did not read back/],
    ["no write at all", { acknowledged: 0, readBack: 0 }, /no write was acknowledged/],
    ["a wrong value", { readMismatches: 1 }, /gave another value/],
    ["a 500", { errors: { "500 internal_error": 1 } }, /outside the documented set/],
    ["a transport error", { errors: { "transport ECONNRESET": 1 } }, /outside the documented set/],
    ["an undocumented 503", { errors: { "503 made_up": 1 } }, /outside the documented set/],
    ["a broken chain", { chains: [{ scope: "soak-1", intact: false }] }, /chain of soak-1 does not verify/],
    ["an unfinished re-wrap", { rewrapPhase: "rewrap" }, /re-wrap ended in phase rewrap/],
    [
      "RSS that keeps growing",
      { rss: flat.map((s, i) => ({ ...s, bytes: (150 + 10 * i) * MiB })) },
      /server RSS grew/,
    ],
    ["too few RSS samples", { rss: flat.slice(0, 3) }, /only 3 RSS samples/],
  ])("fail on %s", (_, change, message) => {
    const { failures } = judgeSoak({ ...clean, ...change });
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(message);
  });
});
