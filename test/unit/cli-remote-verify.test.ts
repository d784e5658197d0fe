import { describe, expect, it } from "vitest";
import { auditVerifyRemote } from "../../cli/commands/operations.ts";
import { ProblemFound } from "../../cli/errors.ts";
import type { Output } from "../../cli/output.ts";
import type { Remote } from "../../cli/remote.ts";

// A stand-in operator, not the real API: the real service always moves a verify walk on, and this
// test is about a server (or proxy) that does not.
const silent: Output = { json: true, write: () => {}, note: () => {} };

function remoteAnswering(pages: { verifiedThrough: number; nextCursor?: string }[]) {
  const asked: (string | undefined)[] = [];
  const remote = {
    url: "https://strongbox.invalid",
    operator: {
      auditVerify: async (scope: string, query: Record<string, string | undefined>) => {
        asked.push(query.cursor);
        const page = pages[Math.min(asked.length - 1, pages.length - 1)];
        return { scope, intact: true, records: page?.verifiedThrough, summary: "", ...page };
      },
    },
  } as unknown as Remote;
  return { remote, asked };
}

describe("strongbox audit verify --url follows the cursor", () => {
  it("to the end of the walk, one call per page", async () => {
    const { remote, asked } = remoteAnswering([
      { verifiedThrough: 10, nextCursor: "c1" },
      { verifiedThrough: 20, nextCursor: "c2" },
      { verifiedThrough: 25 },
    ]);
    expect(await auditVerifyRemote(remote, silent, ["acme"], new Map())).toBe(true);
    expect(asked).toEqual([undefined, "c1", "c2"]);
  });

  it("and stops with a problem when a page does not move the walk on, instead of asking forever", async () => {
    const { remote, asked } = remoteAnswering([
      { verifiedThrough: 10, nextCursor: "c1" },
      { verifiedThrough: 10, nextCursor: "c1" },
    ]);
    await expect(auditVerifyRemote(remote, silent, ["acme"], new Map())).rejects.toBeInstanceOf(ProblemFound);
    expect(asked).toHaveLength(2);
  });
});
