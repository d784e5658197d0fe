import type { ChainedAuditRecord } from "../../shared/domain/audit-chain.ts";
import { StrongboxError } from "../../shared/domain/errors.ts";
import type { Logger } from "../../shared/observability/logger.ts";

/**
 * JSON lines, one record each, pulled from the store as the client reads. The last line is a trailer,
 * `{"end":true,"records":n,"lastSequence","lastHash"}`, so that an export cut short (a dropped
 * connection, a proxy's limit) is told from a complete one: it has no trailer. The status is sent
 * before the records are read, so a store failure mid-stream ends the export with an error line,
 * `{"end":false,"error":{"code","message"}}`, instead of the trailer.
 */
export function jsonLines(
  records: AsyncGenerator<ChainedAuditRecord>,
  logger: Logger,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const line = (value: unknown) => encoder.encode(`${JSON.stringify(value)}\n`);
  let count = 0;
  let last: ChainedAuditRecord | undefined;
  return new ReadableStream({
    async pull(controller) {
      let next: IteratorResult<ChainedAuditRecord>;
      try {
        next = await records.next();
      } catch (error) {
        const known = error instanceof StrongboxError;
        logger.error("audit export failed mid-stream", {
          records: count,
          errorName: error instanceof Error ? error.name : "unknown",
        });
        controller.enqueue(
          line({
            end: false,
            records: count,
            error: known
              ? { code: error.code, message: error.message }
              : { code: "internal_error", message: "the export failed; see the server log" },
          }),
        );
        controller.close();
        return;
      }
      if (next.done === true) {
        controller.enqueue(
          line({
            end: true,
            records: count,
            ...(last === undefined ? {} : { lastSequence: last.sequence, lastHash: last.hash }),
          }),
        );
        controller.close();
        return;
      }
      count += 1;
      last = next.value;
      controller.enqueue(line(next.value));
    },
    async cancel() {
      await records.return(undefined);
    },
  });
}
