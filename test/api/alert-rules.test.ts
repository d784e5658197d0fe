import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createApp } from "../../functions/api/app.ts";
import { type Harness, readResponse, startHarness } from "../../testing/harness.ts";

// docs/alerts.yml is the self-hoster's alerting: every series a rule reads must be one the server's
// /metrics serves, or the rule silently never fires. Prometheus's own `up` is the one exception.

const rulesFile = join(import.meta.dirname, "..", "..", "docs", "alerts.yml");
/** PromQL words that look like series names but are not. */
const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
]);

/** The series names in a PromQL expression: identifiers that are not keywords, functions, labels or durations. */
function seriesNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  const names = [...bare.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)]
    .filter(([, name, call]) => call === undefined && !KEYWORDS.has(name ?? ""))
    .map(([, name]) => name ?? "");
  return [...new Set(names)];
}

interface Rule {
  readonly alert: string;
  readonly expr: string;
}

let h: Harness;
let served: Set<string>;
let rules: Rule[];

beforeAll(async () => {
  h = await startHarness();
  // The app as the local server builds it, with the metrics route on.
  const scrape = await readResponse(await createApp(h.runtime, { exposeMetrics: true }).request("/metrics"));
  expect(scrape.status).toBe(200);
  served = new Set(
    scrape.text
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("#"))
      .map((line) => line.split(/[\s{]/)[0] ?? ""),
  );
  const document = parse(readFileSync(rulesFile, "utf8")) as { groups: { rules: Rule[] }[] };
  rules = document.groups.flatMap((group) => group.rules);
});
afterAll(async () => {
  await h.close();
});

describe("docs/alerts.yml", () => {
  it("the name extractor finds series and skips functions, labels, ranges and keywords", () => {
    expect(
      seriesNames(
        'sum by (job) (rate(a_total{job="x", le="b_c"}[5m])) > 0.1 or absent(up{job="s"}) unless on(i) c',
      ),
    ).toEqual(["a_total", "up", "c"]);
  });

  it("parses, and every rule has an alert name and an expression", () => {
    expect(rules.length).toBeGreaterThanOrEqual(3);
    for (const rule of rules) {
      expect(rule.alert).toMatch(/^Strongbox[A-Za-z]+$/);
      expect(typeof rule.expr).toBe("string");
    }
  });

  it("names only series that /metrics serves, besides Prometheus's own up", () => {
    expect(served.size).toBeGreaterThan(5);
    const named = rules.flatMap((rule) => seriesNames(rule.expr).map((name) => ({ rule: rule.alert, name })));
    expect(named.filter(({ name }) => name !== "up").length).toBeGreaterThan(0);
    expect(named.filter(({ name }) => name !== "up" && !served.has(name))).toEqual([]);
  });

  it("fires when the service is down or never came up, on the strongbox scrape job", () => {
    const down = rules.find((rule) => seriesNames(rule.expr).includes("up"));
    expect(down?.expr).toContain('up{job="strongbox"} == 0');
    expect(down?.expr).toContain('absent(up{job="strongbox"})');
  });
});
