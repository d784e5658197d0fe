import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { documentedErrors, isTolerated } from "./documented-errors.ts";
import { ServerProcess } from "./server-process.ts";

/**
 * A soak against the real `npm start` server in a child process: mixed traffic from many concurrent
 * clients over several tenants, across DEK rotations and one KEK rotation (a restart on a new KEK with
 * the old one as previous, then the re-wrap route), and at the end the checks that nothing was lost:
 * every acknowledged write reads back at its version, every audit chain verifies, the server's RSS
 * stayed flat and no client saw an error outside the documented set.
 */

export interface SoakOptions {
  readonly durationMs: number;
  readonly clients?: number;
  readonly tenants?: number;
  readonly secretsPerTenant?: number;
  /** Called with each progress line while the soak runs. */
  readonly progress?: (line: string) => void;
}

type Kind = "read" | "write" | "rotate-secret" | "rotate-dek" | "audit";

/** Of every 100 requests: reads, writes, rotations (secret values and DEKs) and audit queries. */
const MIX: readonly [Kind, number][] = [
  ["read", 70],
  ["write", 20],
  ["rotate-secret", 4],
  ["rotate-dek", 1],
  ["audit", 5],
];
const GENERATED_PER_TENANT = 2;
/** When in the run (as a share of it) the server restarts on a new KEK and the re-wrap is requested. */
const KEK_ROTATION_AT = 0.25;
/**
 * The RSS may grow this much from the post-warm-up baseline to the end of the run. The floor covers
 * the suite's 20-second run, whose restarted server is still warming up (some 65 MiB in its first
 * 15 s); the leak this check exists for grew 45-60 MiB a minute, which a 10-minute run shows at once.
 */
const RSS_GROWTH_LIMIT = { share: 0.25, atLeastBytes: 96 * 2 ** 20 };
const KEPT_OUTPUT = 256 * 1024;
const REWRAP_GRACE_MS = 60_000;

export interface Slice {
  readonly fromS: number;
  readonly toS: number;
  readonly requests: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly readP99Ms: number;
}

export interface RssSample {
  readonly atS: number;
  readonly bytes: number;
  /** Which server process: 1 before the KEK rotation, 2 after. */
  readonly server: number;
}

export interface SoakReport {
  readonly durationS: number;
  readonly clients: number;
  readonly tenants: number;
  readonly secrets: number;
  readonly requests: number;
  readonly byKind: Record<Kind, number>;
  /** `status code` → count, for every non-2xx answer and transport error ("transport" status). */
  readonly errors: Record<string, number>;
  readonly undocumentedErrors: Record<string, number>;
  readonly slices: Slice[];
  readonly rss: RssSample[];
  readonly rssBaselineBytes: number;
  readonly rssEndBytes: number;
  readonly writesAcknowledged: number;
  readonly writesReadBack: number;
  readonly readMismatches: number;
  readonly chains: { scope: string; intact: boolean; records: number }[];
  readonly kekRotation: { restartMs: number; rewrapPhase: string; rewrapped: number };
  readonly dekRotations: number;
  readonly secretRotations: number;
  readonly failures: string[];
}

interface Tenant {
  readonly id: string;
  readonly operator: string;
  readonly runner: string;
  readonly auditor: string;
  readonly plain: string[];
  readonly generated: string[];
}

interface Answer {
  readonly status: number | "transport";
  readonly code?: string;
  readonly json?: any;
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN;
}

const median = (values: readonly number[]) =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  );

function rssOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const kib = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kib === undefined ? undefined : Number(kib) * 1024;
  } catch {
    return undefined;
  }
}

const newKek = () => randomBytes(32).toString("base64");

class Soak {
  readonly #options: Required<Omit<SoakOptions, "progress">> & Pick<SoakOptions, "progress">;
  readonly #documented = documentedErrors();
  readonly #dataDir = mkdtempSync(join(tmpdir(), "strongbox-soak-"));
  readonly #kekA = newKek();
  readonly #kekB = newKek();
  #server: ServerProcess | undefined;
  #serverNumber = 0;
  #url = "";
  #admin = "";
  #tenants: Tenant[] = [];
  /** tenant/name → version → value, for every write the server acknowledged. */
  readonly #acknowledged = new Map<string, Map<number, string>>();
  readonly #errors = new Map<string, number>();
  readonly #byKind: Record<Kind, number> = {
    read: 0,
    write: 0,
    "rotate-secret": 0,
    "rotate-dek": 0,
    audit: 0,
  };
  /** Per measured request: when it ended (ms into the run), its latency, whether it was a read. */
  readonly #timings: { at: number; ms: number; read: boolean }[] = [];
  readonly #rss: RssSample[] = [];
  readonly #lastDekRotation = new Map<string, number>();
  #readMismatches = 0;
  #dekRotations = 0;
  #secretRotations = 0;
  #startedAt = 0;
  #counter = 0;
  #inFlight = 0;
  /** Set while the server restarts: clients wait on it before their next request. */
  #paused: Promise<void> | undefined;

  constructor(options: SoakOptions) {
    this.#options = {
      clients: 32,
      tenants: 4,
      secretsPerTenant: 8,
      ...options,
    };
  }

  async run(): Promise<SoakReport> {
    try {
      await this.#startServer({ CREDENTIALS_KEK: this.#kekA });
      this.#admin = readFileSync(join(this.#dataDir, "admin-token"), "utf8").trim();
      await this.#seed();
      this.#startedAt = performance.now();
      const sampler = setInterval(() => this.#sampleRss(), this.#sampleEveryMs());
      this.#sampleRss();
      const kek = this.#rotateKekAt(this.#options.durationMs * KEK_ROTATION_AT);
      const end = this.#startedAt + this.#options.durationMs;
      await Promise.all(
        Array.from({ length: this.#options.clients }, async () => {
          while (performance.now() < end) {
            if (this.#paused !== undefined) await this.#paused;
            await this.#oneRequest();
          }
        }),
      );
      const kekRotation = await kek;
      this.#sampleRss();
      clearInterval(sampler);
      return await this.#finish(kekRotation);
    } finally {
      await this.#server?.stop();
      rmSync(this.#dataDir, { recursive: true, force: true });
    }
  }

  #sampleEveryMs(): number {
    return Math.min(10_000, Math.max(500, this.#options.durationMs / 60));
  }

  #sampleRss(): void {
    const bytes = rssOf(this.#server?.child.pid);
    if (bytes === undefined) return;
    this.#rss.push({ atS: this.#elapsedS(), bytes, server: this.#serverNumber });
  }

  #elapsedS(): number {
    return (performance.now() - this.#startedAt) / 1000;
  }

  async #startServer(kek: Record<string, string>): Promise<void> {
    this.#server = ServerProcess.start({
      outputLimit: KEPT_OUTPUT,
      env: {
        DATA_DIR: this.#dataDir,
        ...kek,
        // Sweeps and re-wraps progress during the run, not only every five minutes.
        ROTATION_INTERVAL_SECONDS: "2",
        DEK_RETIRE_GRACE_SECONDS: "10",
      },
    });
    this.#serverNumber += 1;
    this.#url = await this.#server.listening(60_000);
  }

  async #call(method: string, path: string, token: string, body?: unknown): Promise<Answer> {
    try {
      const response = await fetch(`${this.#url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          "x-audit-reason": "soak",
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      let json: any;
      try {
        json = text === "" ? undefined : JSON.parse(text);
      } catch {
        json = undefined;
      }
      const code = response.ok
        ? undefined
        : typeof json?.error?.code === "string"
          ? json.error.code
          : "no_json";
      return { status: response.status, ...(code === undefined ? {} : { code }), json };
    } catch (error) {
      return {
        status: "transport",
        code: (error as { cause?: { code?: string } }).cause?.code ?? "fetch_failed",
      };
    }
  }

  async #must(method: string, path: string, token: string, body?: unknown): Promise<any> {
    const answer = await this.#call(method, path, token, body);
    if (typeof answer.status !== "number" || answer.status >= 300) {
      throw new Error(`soak set-up: ${method} ${path} answered ${answer.status} ${answer.code ?? ""}`);
    }
    return answer.json;
  }

  async #seed(): Promise<void> {
    for (let t = 0; t < this.#options.tenants; t += 1) {
      const id = `soak-${t}`;
      await this.#must("POST", "/v1/tenants", this.#admin, { tenantId: id });
      const mint = async (role: string) =>
        (await this.#must("POST", "/v1/tokens", this.#admin, { role, tenants: [id], ttlSeconds: 86_400 }))
          .token as string;
      const tenant: Tenant = {
        id,
        operator: await mint("operator"),
        runner: await mint("runner"),
        auditor: await mint("auditor"),
        plain: Array.from({ length: this.#options.secretsPerTenant }, (_, i) => `secret-${i}`),
        generated: Array.from({ length: GENERATED_PER_TENANT }, (_, i) => `generated-${i}`),
      };
      for (const name of tenant.plain) {
        const value = this.#nextValue(name);
        const put = await this.#must("PUT", `/v1/tenants/${id}/secrets/${name}`, tenant.operator, { value });
        this.#acknowledge(id, name, put.version, value);
      }
      for (const name of tenant.generated) {
        await this.#must("PUT", `/v1/tenants/${id}/secrets/${name}`, tenant.operator, {
          value: this.#nextValue(name),
        });
        await this.#must("PUT", `/v1/tenants/${id}/secrets/${name}/rotation`, tenant.operator, {
          rotationPeriodDays: 30,
          generator: { kind: "token", length: 32 },
        });
      }
      this.#tenants.push(tenant);
    }
  }

  #nextValue(name: string): string {
    this.#counter += 1;
    return `${name}-${this.#counter}-${randomBytes(12).toString("base64url")}`;
  }

  #acknowledge(tenant: string, name: string, version: unknown, value: string): void {
    if (typeof version !== "number") throw new Error(`a write to ${tenant}/${name} answered no version`);
    const key = `${tenant}/${name}`;
    const versions = this.#acknowledged.get(key) ?? new Map<number, string>();
    if (versions.has(version)) this.#fail(`version ${version} of ${key} was acknowledged twice`);
    versions.set(version, value);
    this.#acknowledged.set(key, versions);
  }

  readonly #inlineFailures: string[] = [];
  #fail(message: string): void {
    if (this.#inlineFailures.length < 20) this.#inlineFailures.push(message);
  }

  #chooseKind(): Kind {
    let roll = Math.random() * 100;
    for (const [kind, weight] of MIX) {
      roll -= weight;
      if (roll < 0) return kind;
    }
    return "read";
  }

  async #oneRequest(): Promise<void> {
    const tenant = pick(this.#tenants);
    let kind = this.#chooseKind();
    // A DEK rotation restarts the tenant's sweep: one per tenant per few seconds keeps sweeps finishing.
    const spacingMs = Math.max(3_000, this.#options.durationMs / 20);
    if (
      kind === "rotate-dek" &&
      performance.now() - (this.#lastDekRotation.get(tenant.id) ?? 0) < spacingMs
    ) {
      kind = "rotate-secret";
    }
    this.#byKind[kind] += 1;
    this.#inFlight += 1;
    const started = performance.now();
    try {
      const answer = await this.#send(kind, tenant);
      this.#timings.push({
        at: performance.now() - this.#startedAt,
        ms: performance.now() - started,
        read: kind === "read",
      });
      if (answer.status === "transport" || answer.status >= 300) {
        const key = `${answer.status} ${answer.code ?? ""}`;
        this.#errors.set(key, (this.#errors.get(key) ?? 0) + 1);
      }
    } finally {
      this.#inFlight -= 1;
    }
  }

  async #send(kind: Kind, tenant: Tenant): Promise<Answer> {
    const base = `/v1/tenants/${tenant.id}`;
    switch (kind) {
      case "read": {
        const name = pick(tenant.plain);
        const versions = this.#acknowledged.get(`${tenant.id}/${name}`);
        // Half the reads ask for an acknowledged version and check its value; the others the current one.
        if (versions !== undefined && Math.random() < 0.5) {
          const [version, value] = pick([...versions.entries()]);
          const answer = await this.#call("GET", `${base}/secrets/${name}?version=${version}`, tenant.runner);
          if (answer.status === 200 && answer.json?.value !== value) {
            this.#readMismatches += 1;
            this.#fail(`${tenant.id}/${name} v${version} read back another value`);
          }
          return answer;
        }
        return this.#call("GET", `${base}/secrets/${name}`, tenant.runner);
      }
      case "write": {
        const name = pick(tenant.plain);
        const value = this.#nextValue(name);
        const answer = await this.#call("PUT", `${base}/secrets/${name}`, tenant.operator, { value });
        if (answer.status === 200) this.#acknowledge(tenant.id, name, answer.json?.version, value);
        return answer;
      }
      case "rotate-secret": {
        const answer = await this.#call(
          "POST",
          `${base}/secrets/${pick(tenant.generated)}/rotate`,
          tenant.operator,
          {},
        );
        if (answer.status === 200) this.#secretRotations += 1;
        return answer;
      }
      case "rotate-dek": {
        this.#lastDekRotation.set(tenant.id, performance.now());
        const answer = await this.#call("POST", `${base}/rotate-dek`, tenant.operator);
        if (answer.status === 200) this.#dekRotations += 1;
        return answer;
      }
      case "audit":
        return Math.random() < 0.8
          ? this.#call("GET", `${base}/audit?limit=20`, tenant.auditor)
          : this.#call("GET", `${base}/audit/head`, tenant.auditor);
    }
  }

  /**
   * The KEK rotation as docs/rotation.md tells it locally: the clients hold off, the server stops and
   * starts on the same data with the new KEK active and the old one previous, and the re-wrap is
   * requested; traffic resumes while the in-process worker re-wraps.
   */
  async #rotateKekAt(atMs: number): Promise<SoakReport["kekRotation"]> {
    await new Promise((resolve) => setTimeout(resolve, atMs));
    let resume: () => void = () => undefined;
    this.#paused = new Promise<void>((resolve) => {
      resume = resolve;
    });
    while (this.#inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const started = performance.now();
    const stopped = await this.#server?.stop();
    if (stopped?.code !== 0) this.#fail(`the server exited ${JSON.stringify(stopped)} on SIGTERM`);
    await this.#startServer({ CREDENTIALS_KEK: this.#kekB, CREDENTIALS_KEK_PREVIOUS: this.#kekA });
    const restartMs = performance.now() - started;
    this.#sampleRss();
    await this.#must("POST", "/v1/kek/rewrap", this.#admin);
    this.#paused = undefined;
    resume();
    // The re-wrap runs beside the traffic; on a loaded machine it may need a little past the run's end.
    const end = this.#startedAt + this.#options.durationMs + REWRAP_GRACE_MS;
    let rewrap: any;
    do {
      await new Promise((resolve) => setTimeout(resolve, 500));
      rewrap = (await this.#must("GET", "/v1/kek", this.#admin)).rewrap;
    } while (rewrap?.phase !== "done" && performance.now() < end);
    return { restartMs, rewrapPhase: String(rewrap?.phase), rewrapped: Number(rewrap?.rewrapped ?? 0) };
  }

  async #readBack(): Promise<{ acknowledged: number; readBack: number }> {
    let acknowledged = 0;
    let readBack = 0;
    const work: (() => Promise<void>)[] = [];
    for (const tenant of this.#tenants) {
      for (const name of tenant.plain) {
        for (const [version, value] of this.#acknowledged.get(`${tenant.id}/${name}`) ?? []) {
          acknowledged += 1;
          work.push(async () => {
            const path = `/v1/tenants/${tenant.id}/secrets/${name}?version=${version}`;
            let answer = await this.#call("GET", path, tenant.runner);
            // A read that met a re-seal is told to read again (503 dek_retired).
            for (let retry = 0; retry < 3 && answer.status === 503; retry += 1) {
              answer = await this.#call("GET", path, tenant.runner);
            }
            if (answer.status === 200 && answer.json?.value === value && answer.json?.version === version) {
              readBack += 1;
            } else {
              this.#fail(
                `${tenant.id}/${name} v${version} did not read back: ${answer.status} ${answer.code ?? "value differs"}`,
              );
            }
          });
        }
      }
    }
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let next = work.pop(); next !== undefined; next = work.pop()) await next();
      }),
    );
    return { acknowledged, readBack };
  }

  async #finish(kekRotation: SoakReport["kekRotation"]): Promise<SoakReport> {
    const durationS = this.#elapsedS();
    const { acknowledged, readBack } = await this.#readBack();
    const chains: SoakReport["chains"] = [];
    for (const scope of [...this.#tenants.map((tenant) => tenant.id), "_system"]) {
      const path = scope === "_system" ? "/v1/audit/verify" : `/v1/tenants/${scope}/audit/verify`;
      const answer = await this.#call("GET", path, this.#admin);
      chains.push({
        scope,
        intact: answer.status === 200 && answer.json?.intact === true,
        records: Number(answer.json?.records ?? 0),
      });
    }
    const errors = Object.fromEntries([...this.#errors].sort(([a], [b]) => a.localeCompare(b)));
    const verdict = judgeSoak({
      documented: this.#documented,
      errors,
      acknowledged,
      readBack,
      readMismatches: this.#readMismatches,
      chains,
      rewrapPhase: kekRotation.rewrapPhase,
      rss: this.#rss.filter((sample) => sample.server === this.#serverNumber),
    });
    const failures = [...this.#inlineFailures, ...verdict.failures];
    const { undocumented, baseline, end } = verdict;
    return {
      durationS,
      clients: this.#options.clients,
      tenants: this.#tenants.length,
      secrets: this.#tenants.length * (this.#options.secretsPerTenant + GENERATED_PER_TENANT),
      requests: this.#timings.length,
      byKind: { ...this.#byKind },
      errors,
      undocumentedErrors: undocumented,
      slices: this.#slices(durationS),
      rss: this.#rss,
      rssBaselineBytes: baseline,
      rssEndBytes: end,
      writesAcknowledged: acknowledged,
      writesReadBack: readBack,
      readMismatches: this.#readMismatches,
      chains,
      kekRotation,
      dekRotations: this.#dekRotations,
      secretRotations: this.#secretRotations,
      failures,
    };
  }

  #slices(durationS: number): Slice[] {
    const count = Math.max(1, Math.min(10, Math.floor(durationS / 2)));
    const width = durationS / count;
    const slices: Slice[] = [];
    for (let i = 0; i < count; i += 1) {
      const inSlice = this.#timings.filter((t) => t.at >= i * width * 1000 && t.at < (i + 1) * width * 1000);
      const all = inSlice.map((t) => t.ms).sort((a, b) => a - b);
      const reads = inSlice
        .filter((t) => t.read)
        .map((t) => t.ms)
        .sort((a, b) => a - b);
      slices.push({
        fromS: i * width,
        toS: (i + 1) * width,
        requests: all.length,
        p50Ms: percentile(all, 50),
        p99Ms: percentile(all, 99),
        readP99Ms: percentile(reads, 99),
      });
    }
    return slices;
  }
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

export interface SoakEvidence {
  readonly documented: Map<number, Set<string>>;
  /** `status code` → count. */
  readonly errors: Record<string, number>;
  readonly acknowledged: number;
  readonly readBack: number;
  readonly readMismatches: number;
  readonly chains: readonly { scope: string; intact: boolean }[];
  readonly rewrapPhase: string;
  /** The samples of the server that ran the longest (the one after the KEK restart). */
  readonly rss: readonly RssSample[];
}

/** The soak's checks over what it saw; kept apart from the traffic so each can be shown to fail. */
export function judgeSoak(evidence: SoakEvidence): {
  failures: string[];
  undocumented: Record<string, number>;
  baseline: number;
  end: number;
} {
  const failures: string[] = [];
  const undocumented = Object.fromEntries(
    Object.entries(evidence.errors).filter(([key]) => {
      const [status, code] = key.split(" ");
      return !isTolerated(evidence.documented, Number(status), code ?? "");
    }),
  );
  if (Object.keys(undocumented).length > 0)
    failures.push(`errors outside the documented set: ${JSON.stringify(undocumented)}`);
  const { acknowledged, readBack } = evidence;
  if (acknowledged === 0) failures.push("no write was acknowledged");
  if (readBack !== acknowledged)
    failures.push(`${acknowledged - readBack} of ${acknowledged} acknowledged writes did not read back`);
  if (evidence.readMismatches > 0)
    failures.push(`${evidence.readMismatches} reads of an acknowledged version gave another value`);
  for (const chain of evidence.chains.filter((c) => !c.intact))
    failures.push(`the audit chain of ${chain.scope} does not verify`);
  if (evidence.rewrapPhase !== "done")
    failures.push(`the KEK re-wrap ended in phase ${evidence.rewrapPhase}, not done`);
  // The first quarter is the server warming up (JIT, caches, pools); stable means flat after it.
  const quarter = Math.max(1, Math.floor(evidence.rss.length / 4));
  const baseline = median(evidence.rss.slice(quarter, 2 * quarter).map((s) => s.bytes));
  const end = median(evidence.rss.slice(-quarter).map((s) => s.bytes));
  const allowed = Math.max(baseline * RSS_GROWTH_LIMIT.share, RSS_GROWTH_LIMIT.atLeastBytes);
  if (evidence.rss.length < 4) failures.push(`only ${evidence.rss.length} RSS samples of the server`);
  else if (end - baseline > allowed)
    failures.push(`server RSS grew from ${mib(baseline)} to ${mib(end)} MiB`);
  return { failures, undocumented, baseline, end };
}

export function runSoak(options: SoakOptions): Promise<SoakReport> {
  return new Soak(options).run();
}

/** The report as the soak command prints it. */
export function formatSoakReport(report: SoakReport): string {
  const lines: string[] = [];
  const figure = (label: string, value: string) => lines.push(`  ${label.padEnd(36)} ${value}`);
  lines.push("soak");
  figure("duration", `${report.durationS.toFixed(1)} s, ${report.clients} concurrent clients`);
  figure("tenants, secrets", `${report.tenants}, ${report.secrets}`);
  figure("requests", `${report.requests} (${(report.requests / report.durationS).toFixed(0)}/s)`);
  figure(
    "by kind",
    Object.entries(report.byKind)
      .map(([k, n]) => `${k} ${n}`)
      .join(", "),
  );
  figure("DEK rotations, secret rotations", `${report.dekRotations}, ${report.secretRotations}`);
  figure(
    "KEK rotation",
    `restart ${(report.kekRotation.restartMs / 1000).toFixed(1)} s, re-wrap ${report.kekRotation.rewrapPhase} (${report.kekRotation.rewrapped} DEKs)`,
  );
  lines.push("errors by code");
  if (Object.keys(report.errors).length === 0) figure("(none)", "");
  for (const [key, n] of Object.entries(report.errors)) {
    figure(key, `${n}${key in report.undocumentedErrors ? "  UNDOCUMENTED" : ""}`);
  }
  lines.push("latency per time slice (all requests; reads' p99)");
  for (const s of report.slices) {
    figure(
      `${s.fromS.toFixed(0)}-${s.toS.toFixed(0)} s`,
      `${s.requests} req, p50 ${s.p50Ms.toFixed(1)} ms, p99 ${s.p99Ms.toFixed(1)} ms, read p99 ${s.readP99Ms.toFixed(1)} ms`,
    );
  }
  lines.push("server RSS over time (MiB; server 2 after the KEK restart)");
  const step = Math.max(1, Math.ceil(report.rss.length / 12));
  const shown = report.rss.filter((_, i) => i % step === 0 || i === report.rss.length - 1);
  figure(
    "samples",
    shown.map((s) => `${s.atS.toFixed(0)}s:${mib(s.bytes)}${s.server > 1 ? "" : "*"}`).join(" "),
  );
  figure("(* = before the KEK restart)", "");
  figure("baseline -> end (server 2)", `${mib(report.rssBaselineBytes)} -> ${mib(report.rssEndBytes)} MiB`);
  lines.push("checks");
  figure("writes acknowledged / read back", `${report.writesAcknowledged} / ${report.writesReadBack}`);
  figure("reads of a version with another value", String(report.readMismatches));
  for (const chain of report.chains) {
    figure(
      `chain ${chain.scope}`,
      `${chain.intact ? "verifies" : "DOES NOT VERIFY"} (${chain.records} records)`,
    );
  }
  figure("result", report.failures.length === 0 ? "all checks passed" : "FAILED");
  for (const failure of report.failures) lines.push(`  - ${failure}`);
  return lines.join("\n");
}
