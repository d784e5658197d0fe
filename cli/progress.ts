import { MultiBar, Presets } from "cli-progress";

/**
 * Bars on stderr, one per key, redrawn in place on a terminal and written as plain lines otherwise
 * (a CI log, a test), so long work always shows how far it got.
 */
export class Progress {
  readonly #bars = new MultiBar(
    {
      stream: process.stderr,
      format: "{label} {bar} {value}/{total} {unit}",
      noTTYOutput: true,
      notTTYSchedule: 250,
      hideCursor: true,
      clearOnComplete: false,
    },
    Presets.shades_classic,
  );
  readonly #byKey = new Map<string, ReturnType<MultiBar["create"]>>();

  update(key: string, value: number, total: number, unit: string): void {
    const bar = this.#byKey.get(key) ?? this.#bars.create(total, 0, { label: key, unit });
    this.#byKey.set(key, bar);
    bar.setTotal(total);
    bar.update(value, { label: key, unit });
  }

  stop(): void {
    this.#bars.stop();
  }
}

export const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
