import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { FUNCTION_ENTRIES } from "../infra/bundling.ts";

// The dependency rules of the layout, checked on the import statements of every source file.

const root = resolve(import.meta.dirname, "..");

function sourceFiles(dir: string): string[] {
  if (!existsSync(join(root, dir))) return [];
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter(
      (entry) => entry.isFile() && entry.name.endsWith(".ts") && !entry.parentPath.includes("node_modules"),
    )
    .map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

interface Import {
  readonly file: string;
  /** A package name, or the resolved repository path of a relative import. */
  readonly target: string;
}

function importsOf(file: string): Import[] {
  const text = readFileSync(join(root, file), "utf8");
  const specifiers = [
    ...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms),
    ...text.matchAll(/^\s*import\s+"([^"]+)"/gm),
    ...text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g),
  ].map((m) => m[1] ?? "");
  return specifiers.map((specifier) => ({
    file,
    target: specifier.startsWith(".") ? relative(root, resolve(root, file, "..", specifier)) : specifier,
  }));
}

const ROOMS = [
  "shared",
  "functions",
  "local",
  "scripts",
  "cli",
  "infra",
  "testing",
  "test",
  "bench",
  "client",
] as const;
const all = ROOMS.flatMap(sourceFiles).flatMap(importsOf);
const violations = (from: (i: Import) => boolean, to: (i: Import) => boolean) =>
  all.filter((i) => from(i) && to(i)).map((i) => `${i.file} -> ${i.target}`);
const inDir = (dir: string) => (path: string) => path.startsWith(`${dir}/`);
/** The folder directly under shared/services a path is in, such as `secrets`. */
const serviceFolder = (path: string) => /^shared\/services\/([^/]+)\//.exec(path)?.[1];

/** Every repository file a file reaches through relative imports, itself included. */
function closure(entry: string): Set<string> {
  const seen = new Set<string>();
  const queue = [entry];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    for (const i of all) if (i.file === file && i.target.endsWith(".ts")) queue.push(i.target);
  }
  return seen;
}

describe("layering", () => {
  it("finds the imports it checks", () => {
    expect(all.length).toBeGreaterThan(50);
    expect(all).toContainEqual({ file: "shared/storage/table.ts", target: "@aws-sdk/client-dynamodb" });
    for (const room of ROOMS.filter((name) => existsSync(join(root, name)))) {
      expect(all.some((i) => inDir(room)(i.file))).toBe(true);
    }
  });

  it("shared never imports functions, infra or the local server", () => {
    expect(
      violations(
        (i) => inDir("shared")(i.file),
        (i) => /^(functions|infra|local|cli)\//.test(i.target),
      ),
    ).toEqual([]);
  });

  it("crypto and storage never import each other", () => {
    expect(
      violations(
        (i) => inDir("shared/crypto")(i.file),
        (i) => inDir("shared/storage")(i.target),
      ),
    ).toEqual([]);
    expect(
      violations(
        (i) => inDir("shared/storage")(i.file),
        (i) => inDir("shared/crypto")(i.target),
      ),
    ).toEqual([]);
  });

  it("services never import runtime", () => {
    expect(
      violations(
        (i) => inDir("shared/services")(i.file),
        (i) => inDir("shared/runtime")(i.target),
      ),
    ).toEqual([]);
  });

  it("sibling service folders share only through domain/", () => {
    expect(all.filter((i) => serviceFolder(i.file) !== undefined).length).toBeGreaterThan(20);
    expect(
      violations(
        (i) => serviceFolder(i.file) !== undefined,
        (i) => serviceFolder(i.target) !== undefined && serviceFolder(i.target) !== serviceFolder(i.file),
      ),
    ).toEqual([]);
    expect(sourceFiles("shared/services").filter((file) => serviceFolder(file) === undefined)).toEqual([]);
  });

  it("only shared/crypto touches KMS or node:crypto", () => {
    const cipher = (i: Import) => i.target === "node:crypto" || i.target.startsWith("@aws-sdk/client-kms");
    const shipped = (i: Import) => /^(shared|functions|local|scripts|cli)\//.test(i.file);
    expect(violations((i) => shipped(i) && !inDir("shared/crypto")(i.file), cipher)).toEqual([]);
  });

  it("only shared/storage touches DynamoDB", () => {
    const dynamo = (i: Import) =>
      /^@aws-sdk\/(client-dynamodb|lib-dynamodb)/.test(i.target) || i.target === "dynalite";
    const shipped = (i: Import) => /^(shared|functions|local|scripts|cli)\//.test(i.file);
    expect(violations((i) => shipped(i) && !inDir("shared/storage")(i.file), dynamo)).toEqual([]);
  });

  it("only shared/storage touches S3 (the audit anchor log)", () => {
    const s3 = (i: Import) => i.target.startsWith("@aws-sdk/client-s3");
    const shipped = (i: Import) => /^(shared|functions|local|scripts|cli)\//.test(i.file);
    expect(all.filter((i) => shipped(i) && s3(i)).map((i) => i.file)).toEqual([
      "shared/storage/s3-anchor-log.ts",
    ]);
  });

  it("only shared/runtime (the bootstrap secret) and shared/references (CredentialRefs) read Secrets Manager", () => {
    const secrets = (i: Import) => i.target.startsWith("@aws-sdk/client-secrets-manager");
    const shipped = (i: Import) => /^(shared|functions|local|scripts|cli)\//.test(i.file);
    const allowed = (file: string) => inDir("shared/runtime")(file) || inDir("shared/references")(file);
    expect(violations((i) => shipped(i) && !allowed(i.file), secrets)).toEqual([]);
    expect(all.filter((i) => secrets(i) && inDir("shared/references")(i.file)).length).toBeGreaterThan(0);
  });

  it("shared/references is an adapter like crypto and storage: it builds on domain only, and only runtime wires it", () => {
    expect(all.some((i) => inDir("shared/references")(i.file))).toBe(true);
    expect(
      violations(
        (i) => inDir("shared/references")(i.file),
        (i) => /^shared\//.test(i.target) && !inDir("shared/domain")(i.target),
      ),
    ).toEqual([]);
    expect(
      violations(
        (i) => /^(shared|functions|local|scripts|cli)\//.test(i.file) && !inDir("shared/runtime")(i.file),
        (i) => inDir("shared/references")(i.target) && !inDir("shared/references")(i.file),
      ),
    ).toEqual([]);
  });

  it("only shared/verifiers calls verification hooks (Lambda, HTTPS), building on domain only, wired by runtime", () => {
    const lambda = (i: Import) => i.target.startsWith("@aws-sdk/client-lambda");
    const shipped = (i: Import) => /^(shared|functions|local|scripts|cli)\//.test(i.file);
    expect(all.filter((i) => shipped(i) && lambda(i)).map((i) => i.file)).toEqual([
      "shared/verifiers/hook-verifier.ts",
    ]);
    expect(
      violations(
        (i) => inDir("shared/verifiers")(i.file),
        (i) => /^shared\//.test(i.target) && !inDir("shared/domain")(i.target),
      ),
    ).toEqual([]);
    expect(
      violations(
        (i) => /^(shared|functions|local|scripts|cli)\//.test(i.file) && !inDir("shared/runtime")(i.file),
        (i) => inDir("shared/verifiers")(i.target) && !inDir("shared/verifiers")(i.file),
      ),
    ).toEqual([]);
  });

  it("only the rotation events, re-wrap request and break-glass event adapters touch EventBridge", () => {
    const eventBridge = (i: Import) => i.target.startsWith("@aws-sdk/client-eventbridge");
    const shipped = (i: Import) => /^(shared|functions|local|scripts|cli)\//.test(i.file);
    expect(all.filter((i) => shipped(i) && eventBridge(i)).map((i) => i.file)).toEqual([
      "shared/observability/break-glass-events.ts",
      "shared/observability/rewrap-requests.ts",
      "shared/observability/rotation-events.ts",
    ]);
  });

  it("functions never import each other", () => {
    const fn = (path: string) => /^functions\/([^/]+)\//.exec(path)?.[1];
    expect(
      violations(
        (i) => fn(i.file) !== undefined,
        (i) => fn(i.target) !== undefined && fn(i.target) !== fn(i.file),
      ),
    ).toEqual([]);
  });

  it("operator scripts build on shared only, never on a function", () => {
    expect(all.some((i) => inDir("scripts")(i.file))).toBe(true);
    expect(
      violations(
        (i) => inDir("scripts")(i.file),
        (i) => /^(functions|infra|local)\//.test(i.target),
      ),
    ).toEqual([]);
  });

  it("the CLI builds on shared only, never on a function, infra or the local server", () => {
    expect(all.some((i) => inDir("cli")(i.file) && inDir("shared")(i.target))).toBe(true);
    expect(
      violations(
        (i) => inDir("cli")(i.file),
        (i) => /^(functions|infra|local|testing)\//.test(i.target),
      ),
    ).toEqual([]);
  });

  it("the domain depends on nothing else in shared", () => {
    expect(
      violations(
        (i) => inDir("shared/domain")(i.file),
        (i) => inDir("shared")(i.target) && !inDir("shared/domain")(i.target),
      ),
    ).toEqual([]);
  });

  it("infra imports nothing from shared or functions: it names handlers by entry path only", () => {
    expect(all.some((i) => inDir("infra")(i.file))).toBe(true);
    expect(
      violations(
        (i) => inDir("infra")(i.file),
        (i) => /^(shared|functions|local|scripts|cli)\//.test(i.target),
      ),
    ).toEqual([]);
  });

  it("bench and test take helpers only from testing/", () => {
    const testOrBench = (path: string) => inDir("test")(path) || inDir("bench")(path);
    expect(
      violations(
        (i) => inDir("test")(i.file),
        (i) => testOrBench(i.target),
      ),
    ).toEqual([]);
    expect(
      violations(
        (i) => inDir("bench")(i.file),
        (i) => inDir("test")(i.target),
      ),
    ).toEqual([]);
    expect(
      violations(
        (i) => inDir("testing")(i.file),
        (i) => testOrBench(i.target),
      ),
    ).toEqual([]);
    expect(all.some((i) => inDir("bench")(i.file) && inDir("testing")(i.target))).toBe(true);
  });

  it("nothing in a shipped bundle imports the local server, tests or benches", () => {
    const entries = Object.values(FUNCTION_ENTRIES);
    expect(entries.length).toBe(3);
    for (const entry of entries) {
      const reached = [...closure(entry)];
      expect(reached.length).toBeGreaterThan(10);
      expect(reached.filter((file) => /^(local|testing|test|bench|scripts|cli|infra)\//.test(file))).toEqual(
        [],
      );
    }
  });

  it("the client ships alone: it imports nothing from the repository, and nothing shipped imports it", () => {
    expect(all.some((i) => inDir("client/src")(i.file))).toBe(true);
    const outside = (i: Import) => !i.target.startsWith("client/") && /^[a-z]+\//.test(i.target);
    expect(violations((i) => inDir("client")(i.file), outside)).toEqual([]);
    // Beyond fetch, only the optional SigV4 peers; the type generator's own package is a dev dependency.
    const packages = all.filter((i) => inDir("client/src")(i.file) && !i.target.startsWith("client/"));
    expect([...new Set(packages.map((i) => i.target))].sort()).toEqual([
      "@aws-sdk/credential-provider-node",
      "aws4fetch",
    ]);
    expect(
      violations(
        (i) => /^(shared|functions|local|scripts|infra)\//.test(i.file),
        (i) => inDir("client")(i.target),
      ),
    ).toEqual([]);
  });

  it("shipped code takes zod as a namespace: a named `z` import bundles every zod locale (some 350 KiB)", () => {
    const shipped = sourceFiles("shared").concat(sourceFiles("functions"));
    const named = shipped.filter((file) =>
      /import\s+(type\s+)?\{[^}]*\bz\b[^}]*\}\s+from\s+"zod"/.test(readFileSync(join(root, file), "utf8")),
    );
    expect(
      shipped.some((file) => readFileSync(join(root, file), "utf8").includes('import * as z from "zod"')),
    ).toBe(true);
    expect(named).toEqual([]);
  });
});
