import {
  appendFileSync,
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import type { PendingAuditRecord } from "../domain/audit-chain.ts";

/** Bytes read per chunk when the sequencer catches up. */
const CHUNK_BYTES = 1 << 20;

/** The stream file's name in the data directory. */
export const AUDIT_STREAM_FILE = "audit-stream.jsonl";

/**
 * The local stand-in for the table's stream: every record the request path writes is appended here
 * as a JSON line, after its put. A table writer who deletes a waiting record from the table does not
 * delete it here, so the sequencer, which reads this file, chains it anyway. The sequencer's place in
 * the file (a byte offset) is kept beside it and moved only once a batch is chained, so a sequencer
 * that crashed reads the rest of its batch again on restart, and the chain drops what it already holds.
 */
export class AuditStreamFile {
  readonly #path: string;
  readonly #offsetPath: string;

  constructor(path: string) {
    this.#path = path;
    this.#offsetPath = `${path}.offset`;
  }

  append(record: PendingAuditRecord): void {
    appendFileSync(this.#path, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  }

  /** Where the sequencer resumes: 0 when it never committed. */
  checkpoint(): number {
    if (!existsSync(this.#offsetPath)) return 0;
    const offset = Number(readFileSync(this.#offsetPath, "utf8").trim());
    return Number.isSafeInteger(offset) && offset >= 0 ? offset : 0;
  }

  /** Written whole and renamed into place, so a crash leaves the old offset or the new one. */
  commit(offset: number): void {
    writeFileSync(`${this.#offsetPath}.tmp`, String(offset), { mode: 0o600 });
    renameSync(`${this.#offsetPath}.tmp`, this.#offsetPath);
  }

  /**
   * Up to `max` complete lines from `from`, each parsed (a line that is no JSON comes back as null,
   * for the sequencer to refuse), and the offset just past the last of them.
   */
  read(from: number, max: number): { images: unknown[]; next: number } {
    if (!existsSync(this.#path)) return { images: [], next: from };
    const fd = openSync(this.#path, "r");
    try {
      const images: unknown[] = [];
      let position = from;
      let carry = Buffer.alloc(0);
      let next = from;
      const chunk = Buffer.alloc(CHUNK_BYTES);
      while (images.length < max) {
        const read = readSync(fd, chunk, 0, CHUNK_BYTES, position);
        if (read === 0) break;
        position += read;
        let data = Buffer.concat([carry, chunk.subarray(0, read)]);
        let newline = data.indexOf(10);
        while (newline !== -1 && images.length < max) {
          const line = data.subarray(0, newline).toString("utf8");
          next += newline + 1;
          images.push(parse(line));
          data = data.subarray(newline + 1);
          newline = data.indexOf(10);
        }
        carry = Buffer.from(data);
      }
      return { images, next };
    } finally {
      closeSync(fd);
    }
  }
}

function parse(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}
