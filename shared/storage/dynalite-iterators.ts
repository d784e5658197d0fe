import { createRequire } from "node:module";

interface LevelIterator {
  close(): Promise<void>;
  return?: () => Promise<IteratorResult<never>>;
}

interface AbstractLevelModule {
  readonly AbstractIterator: { readonly prototype: LevelIterator };
  readonly AbstractLevel: {
    readonly prototype: { attachResource(resource: object): void; detachResource(resource: object): void };
  };
}

/** abstract-level as dynalite loads it: dynalite → level → classic-level → abstract-level. */
export function dynaliteAbstractLevel(): AbstractLevelModule {
  const fromDynalite = createRequire(createRequire(import.meta.url).resolve("dynalite"));
  const fromLevel = createRequire(fromDynalite.resolve("level"));
  const fromClassicLevel = createRequire(fromLevel.resolve("classic-level"));
  return fromClassicLevel("abstract-level") as AbstractLevelModule;
}

/**
 * dynalite 4 ends every Query and Scan stream by calling `return()` on its LevelDB iterator, but
 * abstract-level 3 iterators only have `close()`, so none was ever closed: each request left a native
 * iterator open, pinning LevelDB memtables and table files, and the server's RSS grew without bound.
 * Giving the iterators the `return()` dynalite expects closes each one when its stream ends.
 */
export function closeDynaliteIteratorsOnReturn(): void {
  // The shared base of entry, key and value iterators.
  const base = Object.getPrototypeOf(dynaliteAbstractLevel().AbstractIterator.prototype) as LevelIterator;
  if (typeof base.return === "function") return;
  base.return = async function (this: LevelIterator) {
    await this.close();
    return { done: true, value: undefined };
  };
}
