import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

// The dependency rules of the layout, checked on the import statements of every source file.

const root = resolve(import.meta.dirname, "..");

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".ts"))
    .map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

interface Import {
  readonly file: string;
  /** A package name, or the resolved repository path of a relative import. */
  readonly target: string;
}

function importsOf(file: string): Import[] {
  const text = readFileSync(join(root, file), "utf8");
  const specifiers = [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms)].map(
    (m) => m[1] ?? "",
  );
  return specifiers.map((specifier) => ({
    file,
    target: specifier.startsWith(".") ? relative(root, resolve(root, file, "..", specifier)) : specifier,
  }));
}

const all = [...sourceFiles("shared"), ...sourceFiles("functions"), ...sourceFiles("scripts")].flatMap(
  importsOf,
);
const violations = (from: (i: Import) => boolean, to: (i: Import) => boolean) =>
  all.filter((i) => from(i) && to(i)).map((i) => `${i.file} -> ${i.target}`);
const inDir = (dir: string) => (path: string) => path.startsWith(`${dir}/`);

describe("layering", () => {
  it("finds the imports it checks", () => {
    expect(all.length).toBeGreaterThan(50);
    expect(all).toContainEqual({ file: "shared/storage/table.ts", target: "@aws-sdk/client-dynamodb" });
  });

  it("shared never imports functions or infra", () => {
    expect(
      violations(
        (i) => inDir("shared")(i.file),
        (i) => /^(functions|infra)\//.test(i.target),
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

  it("only shared/crypto touches KMS or node:crypto", () => {
    const cipher = (i: Import) => i.target === "node:crypto" || i.target.startsWith("@aws-sdk/client-kms");
    expect(violations((i) => !inDir("shared/crypto")(i.file), cipher)).toEqual([]);
  });

  it("only shared/storage touches DynamoDB", () => {
    const dynamo = (i: Import) =>
      /^@aws-sdk\/(client-dynamodb|lib-dynamodb)/.test(i.target) || i.target === "dynalite";
    expect(violations((i) => !inDir("shared/storage")(i.file), dynamo)).toEqual([]);
  });

  it("only shared/runtime reads Secrets Manager", () => {
    const secrets = (i: Import) => i.target.startsWith("@aws-sdk/client-secrets-manager");
    expect(violations((i) => !inDir("shared/runtime")(i.file), secrets)).toEqual([]);
    expect(all.filter(secrets).length).toBeGreaterThan(0);
  });

  it("only the rotation events adapter touches EventBridge", () => {
    const eventBridge = (i: Import) => i.target.startsWith("@aws-sdk/client-eventbridge");
    expect(all.filter(eventBridge).map((i) => i.file)).toEqual(["shared/observability/rotation-events.ts"]);
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
        (i) => /^(functions|infra)\//.test(i.target),
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
});
