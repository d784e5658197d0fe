import { vi } from "vitest";

export interface OutputCapture {
  /** Everything written to stdout and stderr since the capture began, in order. */
  readonly writes: string[];
  restore(): void;
}

/**
 * Swallows the process's stdout and stderr writes and keeps them. Powertools writes through a Console
 * bound to those streams, so this captures every log line the service emits, for canary checks, and
 * keeps them out of the test output.
 */
export function captureProcessOutput(): OutputCapture {
  const writes: string[] = [];
  const spies = [process.stdout, process.stderr].map((stream) =>
    vi.spyOn(stream, "write").mockImplementation((chunk: unknown) => {
      writes.push(typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8"));
      return true;
    }),
  );
  return {
    writes,
    restore: () => {
      for (const spy of spies) spy.mockRestore();
    },
  };
}
