import { StrongboxConfigError } from "./errors.ts";

/** Signs one request; the transport calls it for every attempt, so each carries a fresh date. */
export type Signer = (request: Request) => Promise<Request>;

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string | undefined;
}

export interface Sigv4Options {
  /** The API's region, e.g. `eu-west-1`. */
  readonly region: string;
  /** `execute-api` unless given. */
  readonly service?: string;
  /**
   * Where credentials come from; by default the standard AWS chain (`@aws-sdk/credential-provider-node`:
   * environment, web identity, SSO, shared files, container and instance metadata), which caches and
   * refreshes them. Either that package or `aws4fetch` is needed only for SigV4, as optional peers.
   */
  readonly credentials?: () => Promise<AwsCredentials>;
}

/**
 * A SigV4 signer for the HTTP API's IAM authorization, built on `aws4fetch`. Both optional packages
 * are loaded on the first signed request, so a bearer-token client never loads them.
 */
export function sigv4(options: Sigv4Options): Signer {
  if (typeof options.region !== "string" || !/^[a-z]{2}(-[a-z0-9]+)+-\d$/.test(options.region)) {
    throw new StrongboxConfigError("sigv4 needs an AWS region such as eu-west-1");
  }
  const service = options.service ?? "execute-api";
  let loaded:
    | Promise<{ sign: (request: Request, credentials: AwsCredentials) => Promise<Request> }>
    | undefined;
  let credentials = options.credentials;
  return async (request) => {
    loaded ??= import("aws4fetch").then(({ AwsV4Signer }) => ({
      async sign(unsigned: Request, creds: AwsCredentials) {
        const body = unsigned.body === null ? undefined : await unsigned.clone().arrayBuffer();
        const signer = new AwsV4Signer({
          method: unsigned.method,
          url: unsigned.url,
          headers: unsigned.headers,
          ...(body === undefined ? {} : { body }),
          accessKeyId: creds.accessKeyId,
          secretAccessKey: creds.secretAccessKey,
          ...(creds.sessionToken === undefined ? {} : { sessionToken: creds.sessionToken }),
          service,
          region: options.region,
        });
        const signed = await signer.sign();
        return new Request(signed.url, {
          method: signed.method,
          headers: signed.headers,
          ...(body === undefined ? {} : { body }),
          signal: unsigned.signal,
        });
      },
    }));
    credentials ??= await defaultChain();
    const { sign } = await loaded;
    return sign(request, await credentials());
  };
}

async function defaultChain(): Promise<() => Promise<AwsCredentials>> {
  const { defaultProvider } = await import("@aws-sdk/credential-provider-node");
  return defaultProvider();
}
