/** One thing a check looked at: fine, worth knowing, or a problem with the one-line fix. */
export interface Finding {
  readonly check: string;
  readonly status: "ok" | "info" | "problem";
  readonly detail: string;
  readonly fix?: string;
}

export interface Output {
  readonly json: boolean;
  /** A value or a report, the only thing written to stdout. */
  write(text: string): void;
  /** Progress and notes for the person at the terminal; stderr, so pipes carry only results. */
  note(text: string): void;
}

export const consoleOutput = (json: boolean): Output => ({
  json,
  write: (text) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
  note: (text) => process.stderr.write(`${text}\n`),
});

/** Columns padded to their widest cell; values are never wrapped, so a row stays one line. */
export function table(rows: readonly Record<string, unknown>[], columns?: readonly string[]): string {
  if (rows.length === 0) return "(none)";
  const names = columns ?? Object.keys(rows[0] as object);
  const cell = (value: unknown) =>
    value === undefined || value === null
      ? ""
      : typeof value === "object"
        ? JSON.stringify(value)
        : String(value);
  const widths = names.map((name) => Math.max(name.length, ...rows.map((row) => cell(row[name]).length)));
  const line = (cells: string[]) =>
    cells
      .map((text, i) => text.padEnd(widths[i] as number))
      .join("  ")
      .trimEnd();
  return [
    line(names.map((name) => name.toUpperCase())),
    ...rows.map((row) => line(names.map((n) => cell(row[n])))),
  ].join("\n");
}

export function printFindings(out: Output, findings: readonly Finding[]): boolean {
  const healthy = findings.every((finding) => finding.status !== "problem");
  if (out.json) {
    out.write(JSON.stringify({ healthy, findings }, null, 2));
    return healthy;
  }
  const mark = { ok: "ok", info: "--", problem: "!!" } as const;
  out.write(
    findings
      .map(
        (f) => `${mark[f.status]} ${f.check}: ${f.detail}${f.fix === undefined ? "" : `\n   fix: ${f.fix}`}`,
      )
      .join("\n"),
  );
  out.write(
    healthy
      ? "no problems found"
      : `${findings.filter((f) => f.status === "problem").length} problem(s) found`,
  );
  return healthy;
}
