export { type CacheOptions, RotationAwareCache, type RotationHints } from "./cache.ts";
export * from "./client.ts";
export * from "./errors.ts";
export * from "./operator.ts";
export { type AwsCredentials, type Signer, type Sigv4Options, sigv4 } from "./sigv4.ts";
export type { RetryOptions } from "./transport.ts";
