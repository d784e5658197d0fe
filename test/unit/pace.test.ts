import { describe, expect, it } from "vitest";
import { Pace } from "../../shared/services/keys/pace.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("Pace, the sweep's pacing", () => {
  it("keeps at most `concurrency` items in flight and returns results in the items' order", async () => {
    const pace = new Pace({ concurrency: 3, lagTargetMs: 1000, maxPauseMs: 10 });
    let inFlight = 0;
    let most = 0;
    const items = Array.from({ length: 20 }, (_, i) => i);
    const results = await pace.map(items, async (item) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      await sleep(item % 3);
      inFlight -= 1;
      return item * 2;
    });
    expect(results).toEqual(items.map((item) => item * 2));
    expect(most).toBe(3);
  });

  it("lets other work on the event loop run between its items", async () => {
    const pace = new Pace({ concurrency: 1, lagTargetMs: 1000, maxPauseMs: 10 });
    const order: string[] = [];
    // Items that never await anything real would otherwise run back to back in microtasks.
    const done = pace.map([1, 2, 3], async (item) => {
      order.push(`item ${item}`);
    });
    setImmediate(() => order.push("foreground"));
    await done;
    expect(order.indexOf("foreground")).toBeLessThan(order.indexOf("item 3"));
  });

  it("pauses while the event loop is delayed past the target, and not when it is not", async () => {
    const run = async (blockMs: number, lagTargetMs: number) => {
      const pace = new Pace({ concurrency: 1, lagTargetMs, maxPauseMs: 20 });
      let items = 0;
      await pace.map(
        Array.from({ length: 40 }, (_, i) => i),
        async () => {
          // Holds the loop, as a burst of foreground requests does.
          const until = performance.now() + blockMs;
          while (performance.now() < until);
          await sleep(0);
          items += 1;
        },
      );
      return { items, pauseMs: pace.pauseMs };
    };
    const busy = await run(15, 5);
    expect(busy.items).toBe(40);
    expect(busy.pauseMs).toBeGreaterThan(0);
    expect(busy.pauseMs).toBeLessThanOrEqual(20);
    // A target far above anything this loop sees: the work never pauses.
    expect(await run(0, 500)).toEqual({ items: 40, pauseMs: 0 });
  });
});
