import { readFileSync } from "node:fs";
import {
  StrongboxApiError,
  StrongboxClient,
  StrongboxConfigError,
  StrongboxNetworkError,
  StrongboxOperator,
} from "../client/src/index.ts";
import type { Env } from "../shared/domain/env.ts";
import { ProblemFound, UsageError } from "./errors.ts";

export interface ConnectionOptions {
  readonly url?: string;
  readonly tokenFile?: string;
  readonly aws?: boolean;
}

export interface Remote {
  readonly url: string;
  readonly client: StrongboxClient;
  readonly operator: StrongboxOperator;
}

/**
 * The API the commands talk to: `--url` or STRONGBOX_URL, with a token from STRONGBOX_TOKEN, a token
 * file (`--token-file`, STRONGBOX_TOKEN_FILE), or, with `--aws`, SigV4 from the AWS credential chain.
 * A token is never taken as an argument.
 */
export function connect(env: Env, options: ConnectionOptions): Remote {
  const url = options.url ?? env.STRONGBOX_URL;
  if (url === undefined || url === "") {
    throw new UsageError("no API to talk to: give --url or set STRONGBOX_URL (e.g. http://127.0.0.1:8787)");
  }
  const auth = authFrom(env, options);
  try {
    // The CLI caches nothing between commands, and retries only what the client deems safe.
    const client = new StrongboxClient({ baseUrl: url, ...auth, cache: false });
    const operator = new StrongboxOperator({ baseUrl: url, ...auth });
    return { url, client, operator };
  } catch (error) {
    if (error instanceof StrongboxConfigError) throw new UsageError(error.message);
    throw error;
  }
}

function authFrom(env: Env, options: ConnectionOptions) {
  if (options.aws === true) {
    const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
    if (region === undefined)
      throw new UsageError("--aws signs with SigV4: set AWS_REGION to the API's region");
    return { sigv4: { region } };
  }
  const file = options.tokenFile ?? env.STRONGBOX_TOKEN_FILE;
  if (file !== undefined && file !== "") {
    try {
      return { token: readFileSync(file, "utf8").trim() };
    } catch {
      throw new UsageError(`cannot read the token file ${file}`);
    }
  }
  const token = env.STRONGBOX_TOKEN;
  if (token === undefined || token === "") {
    throw new UsageError(
      "no credentials: set STRONGBOX_TOKEN, give --token-file (locally .data/admin-token), or use --aws",
    );
  }
  return { token };
}

/** The API's refusals and outages, as the one line the CLI prints; a value is never in them. */
export function remoteProblem(error: unknown, url: string): unknown {
  if (error instanceof StrongboxApiError) {
    const id = error.requestId === undefined ? "" : ` (request ${error.requestId})`;
    return new ProblemFound(`${error.status} ${error.code}: ${error.message}${id}`, fixFor(error.code));
  }
  if (error instanceof StrongboxNetworkError) {
    return new ProblemFound(
      `no answer from ${url}`,
      "check --url or STRONGBOX_URL, and that the service is up",
    );
  }
  if (error instanceof StrongboxConfigError) return new UsageError(error.message);
  return error;
}

function fixFor(code: string): string | undefined {
  switch (code) {
    case "unauthenticated":
      return "the token is missing, expired or revoked: issue a new one (strongbox tokens issue)";
    case "forbidden":
      return "the token's role or tenants do not reach this; use a token that does";
    case "not_found":
      return "check the tenant and secret names (strongbox secrets list TENANT)";
    case "kek_mismatch":
      return "the service lacks the KEK that wrapped this data: run strongbox doctor on the service's environment";
    default:
      return undefined;
  }
}
