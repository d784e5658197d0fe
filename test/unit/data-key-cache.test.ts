import { afterEach, describe, expect, it, vi } from "vitest";
import { DataKeyCache } from "../../shared/crypto/data-key-cache.ts";

const key = (byte: number) => new Uint8Array(32).fill(byte);

/** A loader that counts calls and resolves only when told, so concurrency is explicit, not timed. */
function gatedLoader() {
  let calls = 0;
  let release: (value: Uint8Array) => void = () => undefined;
  let fail: (error: Error) => void = () => undefined;
  const load = () => {
    calls += 1;
    return new Promise<Uint8Array>((resolve, reject) => {
      release = resolve;
      fail = reject;
    });
  };
  return {
    load,
    calls: () => calls,
    release: (value: Uint8Array) => release(value),
    fail: (e: Error) => fail(e),
  };
}

describe("DataKeyCache", () => {
  it("concurrent misses for one key share a single load", async () => {
    const cache = new DataKeyCache();
    const loader = gatedLoader();
    const pending = Array.from({ length: 50 }, () => cache.get("acme#1", loader.load));
    loader.release(key(7));
    const results = await Promise.all(pending);
    expect(loader.calls()).toBe(1);
    for (const result of results) expect(result).toEqual(key(7));
  });

  it("a failed load is shared by its waiters and not cached", async () => {
    const cache = new DataKeyCache();
    const loader = gatedLoader();
    const pending = [cache.get("acme#1", loader.load), cache.get("acme#1", loader.load)];
    loader.fail(new Error("kms down"));
    for (const result of await Promise.allSettled(pending)) expect(result.status).toBe("rejected");
    expect(loader.calls()).toBe(1);
    expect(await cache.get("acme#1", async () => key(1))).toEqual(key(1));
  });

  it("entries older than maxAge are loaded again", async () => {
    let clock = 0;
    const cache = new DataKeyCache({ maxAgeMs: 1000, now: () => clock });
    let loads = 0;
    const load = async () => key(++loads);
    await cache.get("k", load);
    clock = 999;
    expect(await cache.get("k", load)).toEqual(key(1));
    clock = 1000;
    expect(await cache.get("k", load)).toEqual(key(2));
    expect(loads).toBe(2);
  });

  it("an entry handed out maxUses times is loaded again", async () => {
    const cache = new DataKeyCache({ maxUses: 3 });
    let loads = 0;
    const load = async () => key(++loads);
    const seen = [];
    for (let i = 0; i < 7; i += 1) seen.push((await cache.get("k", load))[0]);
    expect(seen).toEqual([1, 1, 1, 2, 2, 2, 3]);
  });

  it("keys of different tenants or versions never share an entry", async () => {
    const cache = new DataKeyCache();
    await cache.get("acme#1", async () => key(1));
    expect(await cache.get("acme#2", async () => key(2))).toEqual(key(2));
    expect(await cache.get("bravo#1", async () => key(3))).toEqual(key(3));
    expect(cache.size).toBe(3);
  });

  it("the oldest entry is dropped beyond maxEntries", async () => {
    const cache = new DataKeyCache({ maxEntries: 2 });
    await cache.get("a", async () => key(1));
    await cache.get("b", async () => key(2));
    await cache.get("c", async () => key(3));
    expect(cache.size).toBe(2);
    expect(await cache.get("a", async () => key(9))).toEqual(key(9));
  });

  it("refuses a non-positive maxAge or maxUses", () => {
    expect(() => new DataKeyCache({ maxAgeMs: 0 })).toThrow(RangeError);
    expect(() => new DataKeyCache({ maxUses: 0 })).toThrow(RangeError);
    expect(() => new DataKeyCache({ maxUses: 1.5 })).toThrow(RangeError);
  });

  describe("expired keys leave memory untouched", () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it("drops an expired key when no request asks for it again", async () => {
      vi.useFakeTimers();
      const cache = new DataKeyCache({ maxAgeMs: 1000 });
      await cache.get("acme#1", async () => key(1));
      await cache.get("globex#1", async () => key(2));
      expect(cache.size).toBe(2);
      await vi.advanceTimersByTimeAsync(999);
      expect(cache.size).toBe(2);
      await vi.advanceTimersByTimeAsync(2);
      expect(cache.size).toBe(0);
    });

    it("drops the expired keys of other tenants on any read, oldest first", async () => {
      let at = 0;
      const cache = new DataKeyCache({ maxAgeMs: 1000, now: () => at });
      await cache.get("acme#1", async () => key(1));
      at = 600;
      await cache.get("globex#1", async () => key(2));
      at = 1200;
      await cache.get("initech#1", async () => key(3));
      // acme's key expired at 1000 and went without being asked for; globex's is still young.
      expect(cache.size).toBe(2);
      cache.clear();
    });
  });
});
