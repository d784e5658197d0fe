import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));
const SERVER_ENTRY = fileURLToPath(new URL("../local/server.ts", import.meta.url));
// An absolute loader URL, so the server can also be started from a working directory without node_modules.
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

/** Start-up can include tsx transpiling the whole app on a cold cache and a busy 2-core runner. */
const DEFAULT_DEADLINE_MS = 20_000;

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export type LogLine = Record<string, unknown> & { level?: string; message?: string };

export interface StartOptions {
  /** Added to a minimal environment; nothing from the test runner's environment leaks in but PATH and HOME. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  /** Characters of each stream kept; the rest is read and dropped (a long run logs a line per request). */
  readonly outputLimit?: number;
}

const live = new Set<ServerProcess>();

/** Kills every server still running; for afterEach/afterAll, so a failed test never leaves a child behind. */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...live].map((server) => server.stop()));
}

/** `node --import tsx local/server.ts` as a child process, as `npm start` runs it. */
export class ServerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitStatus>;
  #stdout = "";
  #stderr = "";
  #status: ExitStatus | undefined;
  readonly #waiters = new Set<() => void>();

  private constructor(options: StartOptions) {
    const env: Record<string, string> = {
      // Minimal on purpose: vitest's own environment sets NODE_ENV=test and silences the logger.
      PATH: process.env.PATH ?? "",
      ...(process.env.HOME === undefined ? {} : { HOME: process.env.HOME }),
      ...(process.env.TMPDIR === undefined ? {} : { TMPDIR: process.env.TMPDIR }),
      PORT: "0",
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      POWERTOOLS_LOG_LEVEL: "INFO",
    };
    for (const [name, value] of Object.entries(options.env ?? {})) {
      if (value === undefined) delete env[name];
      else env[name] = value;
    }
    this.child = spawn(process.execPath, ["--import", TSX_LOADER, SERVER_ENTRY], {
      cwd: options.cwd ?? REPO_ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const limit = options.outputLimit ?? Number.POSITIVE_INFINITY;
    this.child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      if (this.#stdout.length < limit) this.#stdout += chunk;
      this.#notify();
    });
    this.child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      if (this.#stderr.length < limit) this.#stderr += chunk;
      this.#notify();
    });
    this.exited = new Promise<ExitStatus>((resolve) => {
      // "close" rather than "exit": by then both pipes are drained, so the output is complete.
      this.child.once("close", (code, signal) => {
        this.#status = { code, signal };
        live.delete(this);
        this.#notify();
        resolve(this.#status);
      });
    });
    live.add(this);
  }

  static start(options: StartOptions = {}): ServerProcess {
    return new ServerProcess(options);
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Everything the process wrote, both streams. */
  get output(): string {
    return `${this.#stdout}\n${this.#stderr}`;
  }

  /** The JSON log lines from both streams; anything else (Node warnings) is skipped. */
  logs(): LogLine[] {
    return this.output
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as LogLine];
        } catch {
          return [];
        }
      });
  }

  /** Resolves with the URL from the "strongbox listening" line; fails if the process exits first. */
  async listening(deadlineMs = DEFAULT_DEADLINE_MS): Promise<string> {
    const url = await this.#waitFor(() => {
      const line = this.logs().find((entry) => entry.message === "strongbox listening");
      return typeof line?.url === "string" ? line.url : undefined;
    }, deadlineMs);
    if (url === undefined) {
      throw new Error(
        `server did not report listening (exit ${JSON.stringify(this.#status)}); output:\n${this.output}`,
      );
    }
    return url;
  }

  /** Waits for the process to exit on its own. */
  async exit(deadlineMs = DEFAULT_DEADLINE_MS): Promise<ExitStatus> {
    const status = await this.#waitFor(() => this.#status, deadlineMs);
    if (status === undefined) {
      throw new Error(`server still running after ${deadlineMs} ms; output:\n${this.output}`);
    }
    return status;
  }

  /** SIGTERM, as an orchestrator stops it; SIGKILL if it has not exited by the deadline. */
  async stop(deadlineMs = DEFAULT_DEADLINE_MS): Promise<ExitStatus> {
    if (this.#status !== undefined) return this.#status;
    this.child.kill("SIGTERM");
    const status = await this.#waitFor(() => this.#status, deadlineMs);
    if (status !== undefined) return status;
    this.child.kill("SIGKILL");
    return this.exited;
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Polls `probe` on every output chunk and on exit, until it returns a value, the process exits, or the deadline. */
  #waitFor<T>(probe: () => T | undefined, deadlineMs: number): Promise<T | undefined> {
    return new Promise((resolve) => {
      const finish = (value: T | undefined) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(value);
      };
      const timer = setTimeout(() => finish(probe()), deadlineMs);
      const check = () => {
        const value = probe();
        if (value !== undefined || this.#status !== undefined) finish(value);
      };
      this.#waiters.add(check);
      check();
    });
  }
}
