import { type BundlingOptions, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import type { BuildOptions } from "esbuild";

/**
 * How every function is bundled. The house construct hands this object to NodejsFunction, and the
 * bundled-artifact tests and the cold-start bench build with `esbuildOptions`, which maps the same object
 * onto esbuild the way CDK's bundler does, so what is tested is what is deployed.
 */
export const FUNCTION_BUNDLING = {
  format: OutputFormat.ESM,
  target: "node22",
  minify: true,
  sourceMap: true,
  sourcesContent: false,
  // The SDK is bundled, not taken from the runtime's copy: loading the runtime's CommonJS SDK through
  // Node's module loader cost more at cold start than parsing it inside one minified file (bench/coldstart.ts).
  externalModules: [],
  // ESM output still meets CommonJS dependencies that call require() for Node built-ins.
  banner: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);",
  mainFields: ["module", "main"],
} as const satisfies BundlingOptions;

/** The esbuild build CDK runs for one entry; `outfile` mirrors CDK's `index.mjs` for ESM. */
export function esbuildOptions(entry: string, outdir: string): BuildOptions {
  return {
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    target: FUNCTION_BUNDLING.target,
    format: FUNCTION_BUNDLING.format,
    outfile: `${outdir}/index.mjs`,
    minify: FUNCTION_BUNDLING.minify,
    sourcemap: FUNCTION_BUNDLING.sourceMap,
    sourcesContent: FUNCTION_BUNDLING.sourcesContent,
    external: [...FUNCTION_BUNDLING.externalModules],
    banner: { js: FUNCTION_BUNDLING.banner },
    mainFields: [...FUNCTION_BUNDLING.mainFields],
    logLevel: "warning",
  };
}

/** Entry files by function, relative to the repository root; infra knows handlers by path only. */
export const FUNCTION_ENTRIES = {
  api: "functions/api/handler.ts",
  rotation: "functions/rotation/handler.ts",
  audit: "functions/audit/handler.ts",
} as const;
export type FunctionName = keyof typeof FUNCTION_ENTRIES;
