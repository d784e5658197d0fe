import { appendFileSync, existsSync, readFileSync } from "node:fs";
import type { AnchorLog, ChainAnchor } from "../domain/audit-chain.ts";

/** The anchor file's name in the data directory. */
export const ANCHOR_FILE = "audit-anchors.jsonl";

/**
 * Chain heads anchored in an append-only JSON-lines file under `.data/`, outside the table: the local
 * counterpart of the S3 bucket with Object Lock. The service only ever appends to it.
 */
export class AnchorFile implements AnchorLog {
  readonly #path: string;

  constructor(path: string) {
    this.#path = path;
  }

  async append(anchor: ChainAnchor): Promise<void> {
    appendFileSync(this.#path, `${JSON.stringify(anchor)}\n`, { mode: 0o600 });
  }

  async latest(scope: string): Promise<ChainAnchor | undefined> {
    let best: ChainAnchor | undefined;
    for (const anchor of this.#read()) {
      if (anchor.scope === scope && (best === undefined || anchor.sequence > best.sequence)) best = anchor;
    }
    return best;
  }

  async scopes(): Promise<string[]> {
    return [...new Set(this.#read().map((anchor) => anchor.scope))];
  }

  #read(): ChainAnchor[] {
    if (!existsSync(this.#path)) return [];
    const anchors: ChainAnchor[] = [];
    for (const line of readFileSync(this.#path, "utf8").split("\n")) {
      if (line === "") continue;
      try {
        const value = JSON.parse(line) as Partial<ChainAnchor>;
        if (
          typeof value.scope === "string" &&
          Number.isInteger(value.sequence) &&
          typeof value.hash === "string" &&
          typeof value.time === "string"
        ) {
          anchors.push(value as ChainAnchor);
        }
      } catch {
        // A torn last line (a crash mid-append) is skipped; every whole line before it still counts.
      }
    }
    return anchors;
  }
}
