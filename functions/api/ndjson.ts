import type { ChainedAuditRecord } from "../../shared/domain/audit-chain.ts";
import type { Page } from "../../shared/domain/types.ts";

/**
 * NDJSON bytes of records one export page holds. hono/aws-lambda treats `application/x-ndjson` as
 * binary, so the function's answer carries the page base64-encoded: 4 MiB becomes 5.33 MiB, which
 * leaves the headers and the trailer well inside Lambda's 6 MiB (LAMBDA_RESPONSE_LIMIT_BYTES).
 */
export const EXPORT_PAGE_BYTES = 4 * 1024 * 1024;

/** Kept free in a page for its trailer: counts, a 64-digit hash and a cursor of about 60 characters. */
export const EXPORT_TRAILER_BYTES = 1024;

const line = (value: unknown) => `${JSON.stringify(value)}\n`;

/** The bytes a record takes in an export page, as `exportLines` writes it. */
export const exportLineBytes = (record: ChainedAuditRecord) => Buffer.byteLength(line(record));

/**
 * One export page as JSON lines, one record each, then a trailer:
 * `{"end":true,"records":n,"lastSequence","lastHash","nextCursor"?}`. The trailer tells a complete page
 * from one cut short (a dropped connection, a proxy's limit), which has none; `nextCursor` is there
 * when more records remain, and the client asks again with `cursor=` set to it.
 */
export function exportLines(page: Page<ChainedAuditRecord>): string {
  const last = page.items.at(-1);
  return (
    page.items.map(line).join("") +
    line({
      end: true,
      records: page.items.length,
      ...(last === undefined ? {} : { lastSequence: last.sequence, lastHash: last.hash }),
      ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor }),
    })
  );
}
