import { describe, expect, it } from "vitest";
import { buildBundle } from "../../testing/bundles.ts";

// What the API function's bundle takes in, from esbuild's own account of it (the metafile).

describe("the API function's bundle", () => {
  it("serves the OpenAPI document but carries no rendered reference", async () => {
    const { inputs } = await buildBundle("api");
    expect(inputs.some((path) => path.startsWith("functions/api/openapi/"))).toBe(true);
    expect(inputs.some((path) => /node_modules\/hono-openapi\//.test(path))).toBe(true);
    expect(inputs.filter((path) => /@scalar\/|^local\/|^client\//.test(path))).toEqual([]);
  });
});
