import { fc, test } from "@fast-check/vitest";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { type ApiResponse, type Harness, startHarness } from "../../testing/harness.ts";

/*
 * A random interleaving of writes (plain, cas, pending), deletes, promotes, rollbacks and reads of one
 * secret, through the HTTP app, against a model of its labels: the current, previous and pending
 * versions, the highest version number handed out, and which replaced versions were archived. Every
 * answer's status matches the model, and so does every `?version=`/`?stage=` read, step by step and
 * over every version at the end.
 */

interface Version {
  readonly version: number;
  readonly value: string;
}

class Model {
  exists = false;
  live = false;
  current: Version | undefined;
  pending: Version | undefined;
  previous: number | undefined;
  latest = 0;
  /** Values by version, as they were written; a version keeps its value forever. */
  readonly values = new Map<number, string>();
  /** Versions that were current and replaced: these stay readable by number. */
  readonly archived = new Set<number>();

  #makeCurrent(next: Version): void {
    if (this.current !== undefined) {
      this.archived.add(this.current.version);
      this.previous = this.current.version;
    }
    this.current = next;
    this.pending = undefined;
  }

  write(value: string, cas: number | undefined): number {
    if (cas === 0 && this.live) return 409;
    if (cas !== undefined && cas > 0 && (!this.live || this.current?.version !== cas)) return 409;
    if (this.live && this.pending !== undefined) return 409;
    if (this.exists && !this.live) {
      // A write over a deleted secret starts a new history: nothing from before it is reachable.
      this.archived.clear();
      this.values.clear();
      this.current = undefined;
      this.pending = undefined;
      this.previous = undefined;
    }
    this.latest += 1;
    this.values.set(this.latest, value);
    this.#makeCurrent({ version: this.latest, value });
    this.exists = true;
    this.live = true;
    return 200;
  }

  writePending(value: string): number {
    if (this.live && this.pending !== undefined) return 409;
    if (!this.live) return 404;
    this.latest += 1;
    this.values.set(this.latest, value);
    this.pending = { version: this.latest, value };
    return 200;
  }

  delete(): number {
    if (!this.live) return 404;
    this.live = false;
    return 204;
  }

  promote(version: number | undefined): number {
    if (!this.live) return 404;
    if (this.pending === undefined)
      return version !== undefined && this.current?.version === version ? 200 : 409;
    if (version !== undefined && version !== this.pending.version) return 409;
    this.#makeCurrent(this.pending);
    return 200;
  }

  rollback(version: number): number {
    if (!this.live) return 404;
    if (this.pending !== undefined) return 409;
    if (this.current?.version === version) return 200;
    if (this.previous === undefined || this.previous !== version) return 409;
    this.#makeCurrent({ version, value: this.values.get(version) ?? "" });
    return 200;
  }

  /** What a read answers: the version and value, or undefined for a 404. */
  read(selector: { version?: number; stage?: "current" | "pending" | "previous" }): Version | undefined {
    if (!this.live || this.current === undefined) return undefined;
    if (selector.stage === "pending") return this.pending;
    const wanted = selector.stage === "previous" ? this.previous : selector.version;
    if (selector.stage === "previous" && wanted === undefined) return undefined;
    if (wanted === undefined || wanted === this.current.version) return this.current;
    if (wanted === this.pending?.version) return this.pending;
    if (!this.archived.has(wanted)) return undefined;
    const value = this.values.get(wanted);
    return value === undefined ? undefined : { version: wanted, value };
  }

  labels() {
    return {
      current: this.current?.version,
      ...(this.previous === undefined ? {} : { previous: this.previous }),
      ...(this.pending === undefined ? {} : { pending: this.pending.version }),
    };
  }
}

/** A version argument: one the model names at that moment, or a plain number. */
type Pick = "current" | "previous" | "pending" | number;
type Selector = { version: Pick } | { stage: "current" | "pending" | "previous" } | Record<string, never>;
type Op =
  | { kind: "write"; value: string; cas?: Pick }
  | { kind: "pending"; value: string }
  | { kind: "delete" }
  | { kind: "promote"; version?: Pick }
  | { kind: "rollback"; version: Pick }
  | { kind: "read"; selector: Selector };

// Mostly versions the model names, so the paths that change history are taken often.
const pick: fc.Arbitrary<Pick> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("current", "previous", "pending") },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 8 }) },
);
const value = fc.string({ minLength: 1, maxLength: 12 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record(
      { kind: fc.constant("write" as const), value, cas: pick },
      { requiredKeys: ["kind", "value"] },
    ),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("pending" as const), value }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const) }) },
  {
    weight: 3,
    arbitrary: fc.record(
      { kind: fc.constant("promote" as const), version: pick },
      { requiredKeys: ["kind"] },
    ),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("rollback" as const), version: pick }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("read" as const),
      selector: fc.oneof(
        fc.record({ version: pick }),
        fc.record({ stage: fc.constantFrom("current" as const, "pending" as const, "previous" as const) }),
        fc.constant({}),
      ),
    }),
  },
);

const TENANT = "history";
let h: Harness;
let admin: string;
let counter = 0;

beforeAll(async () => {
  h = await startHarness();
  admin = await h.token("admin");
  expect((await h.call("POST", "/v1/tenants", { token: admin, body: { tenantId: TENANT } })).status).toBe(
    201,
  );
});
afterAll(async () => {
  await h.close();
});

/** A version the model names, or 1 where it names none (a number the service must judge). */
function resolve(model: Model, p: Pick): number {
  if (typeof p === "number") return p;
  const named =
    p === "current" ? model.current?.version : p === "previous" ? model.previous : model.pending?.version;
  return named ?? 1;
}

async function expectRead(path: string, model: Model, selector: Parameters<Model["read"]>[0]): Promise<void> {
  const query =
    selector.stage !== undefined
      ? `?stage=${selector.stage}`
      : selector.version !== undefined
        ? `?version=${selector.version}`
        : "";
  const response = await h.call("GET", `${path}${query}`, {
    token: admin,
    headers: { "x-audit-reason": "model check" },
  });
  const expected = model.read(selector);
  const where = `GET ${query} -> ${response.status} ${response.text}`;
  if (expected === undefined) {
    expect(response.status, where).toBe(404);
  } else {
    expect(response.status, where).toBe(200);
    expect(await response.json(), where).toMatchObject({ version: expected.version, value: expected.value });
  }
}

function expectStatus(response: ApiResponse, status: number, what: string): void {
  expect(response.status, `${what} -> ${response.status} ${response.text}`).toBe(status);
}

describe("version history", () => {
  test.prop([fc.array(op, { minLength: 1, maxLength: 14 })], { numRuns: 40 })(
    "matches a model of current, previous and pending under any interleaving",
    async (ops) => {
      counter += 1;
      const path = `/v1/tenants/${TENANT}/secrets/s-${counter}`;
      const model = new Model();
      for (const o of ops) {
        switch (o.kind) {
          case "write": {
            const cas = o.cas === undefined ? undefined : resolve(model, o.cas);
            const response = await h.call("PUT", path, {
              token: admin,
              body: { value: o.value, ...(cas === undefined ? {} : { cas }) },
            });
            const status = model.write(o.value, cas);
            expectStatus(response, status, `PUT cas=${cas}`);
            if (status === 200) expect(await response.json()).toMatchObject({ version: model.latest });
            break;
          }
          case "pending": {
            const response = await h.call("PUT", path, {
              token: admin,
              body: { value: o.value, stage: "pending" },
            });
            const status = model.writePending(o.value);
            expectStatus(response, status, "PUT pending");
            if (status === 200) expect(await response.json()).toMatchObject({ version: model.latest });
            break;
          }
          case "delete":
            expectStatus(await h.call("DELETE", path, { token: admin }), model.delete(), "DELETE");
            break;
          case "promote": {
            // Versions below 1 are bad input (400), not history; the schema tests cover those.
            const version = o.version === undefined ? undefined : Math.max(1, resolve(model, o.version));
            const response = await h.call("POST", `${path}/promote`, {
              token: admin,
              body: version === undefined ? {} : { version },
            });
            const status = model.promote(version);
            expectStatus(response, status, `promote ${version}`);
            if (status === 200)
              expect(await response.json()).toEqual({ name: `s-${counter}`, ...model.labels() });
            break;
          }
          case "rollback": {
            const version = Math.max(1, resolve(model, o.version));
            const response = await h.call("POST", `${path}/rollback`, { token: admin, body: { version } });
            const status = model.rollback(version);
            expectStatus(response, status, `rollback ${version}`);
            if (status === 200)
              expect(await response.json()).toEqual({ name: `s-${counter}`, ...model.labels() });
            break;
          }
          case "read": {
            const s = o.selector;
            await expectRead(
              path,
              model,
              "version" in s
                ? { version: Math.max(1, resolve(model, s.version)) }
                : "stage" in s
                  ? { stage: s.stage }
                  : {},
            );
            break;
          }
        }
      }
      for (const stage of ["current", "pending", "previous"] as const)
        await expectRead(path, model, { stage });
      for (let version = 1; version <= model.latest + 1; version += 1)
        await expectRead(path, model, { version });
    },
  );
});
