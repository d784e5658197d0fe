import type { Logger } from "../../observability/logger.ts";
import type { Sequencer } from "./sequencer.ts";

/** A stream of written records the sequencer reads in order, with a place it moves only once a batch is chained. */
export interface RecordStream {
  checkpoint(): number;
  read(from: number, max: number): { images: unknown[]; next: number };
  commit(offset: number): void;
}

/** Records per batch, as the stream's event source mapping delivers them in AWS. */
export const STREAM_BATCH_RECORDS = 1000;

/**
 * The in-process sequencer of `npm start`: reads the local stream from its checkpoint in batches,
 * chains each batch, and only then moves the checkpoint. On a crash the checkpoint is where the last
 * whole batch ended, so a restart reads the rest again; what was chained already comes back as a
 * duplicate and is chained once. Every tick also anchors the chains that moved.
 */
export class StreamSequencer {
  readonly #stream: RecordStream;
  readonly #sequencer: Sequencer;
  readonly #logger: Logger;
  readonly #batchRecords: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(
    stream: RecordStream,
    sequencer: Sequencer,
    logger: Logger,
    batchRecords = STREAM_BATCH_RECORDS,
  ) {
    this.#stream = stream;
    this.#sequencer = sequencer;
    this.#logger = logger;
    this.#batchRecords = batchRecords;
  }

  /**
   * Chains everything written so far, batch by batch; returns how many records it read. A batch's
   * records leave the table's queue while the next batch is chained, and the checkpoint passes a
   * batch only once its records are chained and cleared and every batch before it is done.
   */
  async drain(): Promise<number> {
    let total = 0;
    let from = this.#stream.checkpoint();
    let committed: Promise<void> = Promise.resolve();
    try {
      for (;;) {
        const { images, next } = this.#stream.read(from, this.#batchRecords);
        if (images.length === 0) break;
        const { cleared } = await this.#sequencer.chain(images);
        const previous = committed;
        committed = (async () => {
          await previous;
          await cleared;
          this.#stream.commit(next);
        })();
        committed.catch(() => undefined);
        from = next;
        total += images.length;
      }
    } finally {
      // Never answers (or fails) with a commit still to come: a successor reads the checkpoint next.
      await committed.catch(() => undefined);
    }
    await committed;
    return total;
  }

  /** Drains every `intervalMs`, one run at a time, and anchors what is due. */
  start(intervalMs: number): void {
    const tick = () => {
      this.#running = this.#tick().finally(() => {
        this.#running = undefined;
        if (this.#timer !== undefined) this.#timer = setTimeout(tick, intervalMs).unref();
      });
    };
    this.#timer = setTimeout(tick, intervalMs).unref();
  }

  /** Stops the timer, finishes the run in progress, chains what is left and anchors every moved chain. */
  async stop(): Promise<void> {
    const timer = this.#timer;
    this.#timer = undefined;
    if (timer !== undefined) clearTimeout(timer);
    await this.#running;
    await this.#tick(true);
  }

  async #tick(force = false): Promise<void> {
    try {
      await this.drain();
      await this.#sequencer.anchorDue(force);
    } catch (error) {
      // The checkpoint did not move: the next tick reads the same batch again.
      this.#logger.error("audit sequencer run failed", {
        errorName: error instanceof Error ? error.name : "unknown",
      });
    }
  }
}
