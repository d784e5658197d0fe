import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const API_DOC = fileURLToPath(new URL("../docs/api.md", import.meta.url));

/**
 * The error codes docs/api.md documents, by HTTP status, read from its "Errors" table so that the
 * table stays the one place they are told: `| 409 | \`conflict\` | … |` rows.
 */
export function documentedErrors(doc = readFileSync(API_DOC, "utf8")): Map<number, Set<string>> {
  const section = doc.split(/^## Errors$/m)[1]?.split(/^## /m)[0] ?? "";
  const byStatus = new Map<number, Set<string>>();
  for (const match of section.matchAll(/^\|\s*(\d{3})\s*\|\s*`([a-z_]+)`\s*\|/gm)) {
    const status = Number(match[1]);
    const codes = byStatus.get(status) ?? new Set<string>();
    codes.add(match[2] as string);
    byStatus.set(status, codes);
  }
  if (byStatus.size === 0) throw new Error("docs/api.md has no error table under ## Errors");
  return byStatus;
}

/**
 * What a client under load may see without it being a defect: a documented 4xx, or a documented 503
 * (the service is briefly unable and said so). A 500 is a failure even when documented.
 */
export function isTolerated(documented: Map<number, Set<string>>, status: number, code: string): boolean {
  const tolerableStatus = (status >= 400 && status < 500) || status === 503;
  return tolerableStatus && (documented.get(status)?.has(code) ?? false);
}
