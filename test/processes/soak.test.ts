import { afterAll, expect, it } from "vitest";
import { stopAllServers } from "../../testing/server-process.ts";
import { formatSoakReport, runSoak } from "../../testing/soak.ts";

afterAll(() => stopAllServers());

/**
 * The 20-second version of `npm run soak`: the real `npm start` server in a child process, 32
 * concurrent clients of mixed traffic across DEK rotations and a KEK rotation (restart plus re-wrap).
 */
it("a 20-second soak loses no acknowledged write, keeps every chain intact and answers only documented errors", async () => {
  const report = await runSoak({ durationMs: 20_000 });
  const printed = formatSoakReport(report);
  expect(report.failures, printed).toEqual([]);
  expect(report.writesAcknowledged, printed).toBeGreaterThan(0);
  expect(report.writesReadBack, printed).toBe(report.writesAcknowledged);
  expect(report.readMismatches, printed).toBe(0);
  expect(report.undocumentedErrors, printed).toEqual({});
  expect(report.chains.length, printed).toBe(report.tenants + 1);
  expect(
    report.chains.every((chain) => chain.intact && chain.records > 0),
    printed,
  ).toBe(true);
  expect(report.kekRotation.rewrapPhase, printed).toBe("done");
  expect(report.byKind.read, printed).toBeGreaterThan(report.byKind.write);
}, 240_000);
