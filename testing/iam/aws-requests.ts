import type { Authorization } from "./policy-evaluator.ts";

/**
 * AWS JSON-protocol requests (and Lambda's REST Invoke, and S3's REST object calls) read back into what IAM authorizes: the action,
 * the resource ARN, and the request context that conditions read. Only what the wire carries is used,
 * the way the service itself builds the context; `Directory` turns names into ARNs.
 */
export interface Directory {
  readonly account: string;
  readonly region: string;
  readonly partition: string;
  /** The partition key attribute of a table, for `dynamodb:LeadingKeys`. */
  partitionKeyOf(tableName: string): string;
  /** A key id, key ARN, alias name or alias ARN to the key's ARN (an unknown id still gets one). */
  keyArn(keyId: string): string;
  /** The key a ciphertext blob was sealed under, as KMS reads it from the blob. */
  keyOfCiphertext(blob: string): string | undefined;
  /** Key facts that KMS puts in the context (`kms:KeySpec`, ...), when the key is known. */
  keyFacts(
    keyArn: string,
  ): { readonly keySpec: string; readonly keyUsage: string; readonly aliases: readonly string[] } | undefined;
  secretArn(secretId: string): string;
  /** The key a secret is encrypted under; Secrets Manager decrypts with it on the caller's behalf. */
  secretKeyArn(secretArn: string): string;
  busArn(nameOrArn: string): string;
  functionArn(nameOrArn: string): string;
}

export interface WireRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

export type Service = "dynamodb" | "kms" | "secretsmanager" | "events" | "lambda" | "s3";

export interface ParsedRequest {
  readonly service: Service | undefined;
  /** The API operation, e.g. `ReEncrypt`; one operation may need several authorizations. */
  readonly operation: string;
  readonly authorizations: readonly Authorization[];
}

type Json = Record<string, any>;
type Context = Record<string, string | string[]>;

const TARGETS: Record<string, Service> = {
  DynamoDB_20120810: "dynamodb",
  TrentService: "kms",
  secretsmanager: "secretsmanager",
  AWSEvents: "events",
};

/** The string form of a low-level AttributeValue, as `dynamodb:LeadingKeys` compares it. */
const scalar = (value: Json | undefined): string | undefined =>
  value === undefined ? undefined : (value.S ?? value.N ?? value.B ?? undefined);

const EXPRESSION_WORDS = new Set(
  "set remove add delete and or not between in if_not_exists list_append attribute_exists attribute_not_exists attribute_type begins_with contains size".split(
    " ",
  ),
);

/** The top-level attribute names an expression names (`#n` through ExpressionAttributeNames). */
function attributesOf(expression: string | undefined, names: Record<string, string> | undefined): string[] {
  if (expression === undefined) return [];
  const found = new Set<string>();
  for (const match of expression.matchAll(/([.:#]?)([A-Za-z_][A-Za-z0-9_]*)(\s*\()?/g)) {
    const [, sigil, word, call] = match as unknown as [string, string, string, string | undefined];
    const before = expression[(match.index ?? 0) - 1];
    if (sigil === ":" || sigil === "." || call !== undefined || before === "." || before === "[") continue;
    if (sigil === "#") found.add(names?.[`#${word}`] ?? `#${word}`);
    else if (!EXPRESSION_WORDS.has(word.toLowerCase())) found.add(word);
  }
  return [...found];
}

/** The partition key value a key condition pins (`pk = :pk`), for Query's `dynamodb:LeadingKeys`. */
function queriedPartition(body: Json, partitionKey: string): string | undefined {
  const names = (body.ExpressionAttributeNames ?? {}) as Record<string, string>;
  for (const [, left, right] of String(body.KeyConditionExpression ?? "").matchAll(
    /([#:]?\w+)\s*=\s*([#:]?\w+)/g,
  )) {
    const pair = [left, right] as [string, string];
    const nameSide = pair.find((side) => !side.startsWith(":"));
    const valueSide = pair.find((side) => side.startsWith(":"));
    const name = nameSide?.startsWith("#") ? names[nameSide] : nameSide;
    if (name === partitionKey && valueSide !== undefined)
      return scalar(body.ExpressionAttributeValues?.[valueSide]);
  }
  return undefined;
}

function dynamodb(operation: string, body: Json, directory: Directory): Authorization[] {
  const tableArn = (name: string, index?: string) =>
    `arn:${directory.partition}:dynamodb:${directory.region}:${directory.account}:table/${name}${index === undefined ? "" : `/index/${index}`}`;
  const leading = (table: string, items: (Json | undefined)[]): Context => {
    const pk = directory.partitionKeyOf(table);
    const values = [
      ...new Set(items.map((item) => scalar(item?.[pk])).filter((v): v is string => v !== undefined)),
    ];
    return values.length === 0 ? {} : { "dynamodb:LeadingKeys": values };
  };
  const given = (name: string, value: unknown): Context =>
    typeof value === "string" ? { [name]: value } : {};
  const projected = (request: Json): Context => {
    const attributes = attributesOf(request.ProjectionExpression, request.ExpressionAttributeNames);
    return attributes.length === 0 ? {} : { "dynamodb:Attributes": attributes };
  };
  const common = (request: Json): Context => ({
    ...given("dynamodb:ReturnValues", request.ReturnValues),
    ...given("dynamodb:ReturnConsumedCapacity", request.ReturnConsumedCapacity),
  });
  const select = (request: Json): Context => ({
    // The effective Select: what was asked, else what a projection implies, else DynamoDB's default.
    "dynamodb:Select":
      request.Select ??
      (request.ProjectionExpression === undefined ? "ALL_ATTRIBUTES" : "SPECIFIC_ATTRIBUTES"),
  });
  const item = (action: string, request: Json): Authorization => {
    const table = String(request.TableName);
    const key = request.Key ?? request.Item;
    const attributes =
      action === "dynamodb:PutItem"
        ? Object.keys(request.Item ?? {})
        : action === "dynamodb:UpdateItem"
          ? [
              ...new Set([
                ...Object.keys(request.Key ?? {}),
                ...attributesOf(request.UpdateExpression, request.ExpressionAttributeNames),
              ]),
            ]
          : attributesOf(request.ProjectionExpression, request.ExpressionAttributeNames);
    return {
      action,
      resource: tableArn(table),
      context: {
        ...leading(table, [key]),
        ...(attributes.length === 0 ? {} : { "dynamodb:Attributes": attributes }),
        ...common(request),
      },
    };
  };
  switch (operation) {
    case "GetItem":
    case "PutItem":
    case "UpdateItem":
    case "DeleteItem":
      return [item(`dynamodb:${operation}`, body)];
    case "Query": {
      const table = String(body.TableName);
      const partition = queriedPartition(body, directory.partitionKeyOf(table));
      return [
        {
          action: "dynamodb:Query",
          resource: tableArn(table, body.IndexName),
          context: {
            ...(partition === undefined ? {} : { "dynamodb:LeadingKeys": [partition] }),
            ...projected(body),
            ...select(body),
            ...common(body),
          },
        },
      ];
    }
    case "Scan":
      return [
        {
          action: "dynamodb:Scan",
          resource: tableArn(String(body.TableName), body.IndexName),
          context: { ...projected(body), ...select(body), ...common(body) },
        },
      ];
    case "BatchGetItem":
      return Object.entries((body.RequestItems ?? {}) as Record<string, Json>).map(([table, request]) => ({
        action: "dynamodb:BatchGetItem",
        resource: tableArn(table),
        context: { ...leading(table, request.Keys ?? []), ...projected(request), ...common(body) },
      }));
    case "BatchWriteItem":
      return Object.entries((body.RequestItems ?? {}) as Record<string, Json[]>).map(([table, writes]) => ({
        action: "dynamodb:BatchWriteItem",
        resource: tableArn(table),
        context: {
          ...leading(
            table,
            writes.map((w) => w.PutRequest?.Item ?? w.DeleteRequest?.Key),
          ),
          ...common(body),
        },
      }));
    case "TransactWriteItems":
    case "TransactGetItems": {
      // A transaction is authorized as the item actions it is made of.
      const actions: Record<string, string> = {
        Put: "dynamodb:PutItem",
        Update: "dynamodb:UpdateItem",
        Delete: "dynamodb:DeleteItem",
        ConditionCheck: "dynamodb:ConditionCheckItem",
        Get: "dynamodb:GetItem",
      };
      return ((body.TransactItems ?? []) as Json[]).flatMap((entry) =>
        Object.entries(entry).map(([kind, request]) =>
          item(actions[kind] ?? `dynamodb:${kind}`, request as Json),
        ),
      );
    }
    default:
      return [
        { action: `dynamodb:${operation}`, resource: tableArn(String(body.TableName ?? "*")), context: {} },
      ];
  }
}

function encryptionContext(prefix: string, context: Record<string, string> | undefined): Context {
  const entries = Object.entries(context ?? {});
  if (entries.length === 0) return {};
  return {
    ...Object.fromEntries(entries.map(([k, v]) => [`${prefix}:${k}`, v])),
    "kms:EncryptionContextKeys": entries.map(([k]) => k),
  };
}

function kms(operation: string, body: Json, directory: Directory, callerAccount: string): Authorization[] {
  const keyOf = (field: unknown, blob?: unknown): string =>
    typeof field === "string" && field !== ""
      ? directory.keyArn(field)
      : directory.keyArn(
          (typeof blob === "string" ? directory.keyOfCiphertext(blob) : undefined) ?? "unknown",
        );
  const about = (keyArn: string, requested: unknown): Context => {
    const facts = directory.keyFacts(keyArn);
    return {
      "kms:CallerAccount": callerAccount,
      ...(typeof requested === "string" && /(^|:)alias\//.test(requested)
        ? { "kms:RequestAlias": requested.replace(/^arn:[^:]+:kms:[^:]*:[^:]*:/, "") }
        : {}),
      ...(facts === undefined
        ? {}
        : {
            "kms:KeySpec": facts.keySpec,
            "kms:KeyUsage": facts.keyUsage,
            "kms:KeyOrigin": "AWS_KMS",
            ...(facts.aliases.length === 0 ? {} : { "kms:ResourceAliases": [...facts.aliases] }),
          }),
    };
  };
  const symmetric = { "kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT" };
  switch (operation) {
    case "GenerateDataKey":
    case "GenerateDataKeyWithoutPlaintext":
    case "Encrypt":
    case "Decrypt": {
      const key = keyOf(body.KeyId, body.CiphertextBlob);
      return [
        {
          action: `kms:${operation}`,
          resource: key,
          context: {
            ...about(key, body.KeyId),
            ...symmetric,
            ...encryptionContext("kms:EncryptionContext", body.EncryptionContext),
          },
        },
      ];
    }
    case "ReEncrypt": {
      const source = keyOf(body.SourceKeyId, body.CiphertextBlob);
      const destination = keyOf(body.DestinationKeyId);
      const sameKey = { "kms:ReEncryptOnSameKey": String(source === destination) };
      // Each side is authorized with its own key and its own encryption context.
      return [
        {
          action: "kms:ReEncryptFrom",
          resource: source,
          context: {
            ...about(source, body.SourceKeyId),
            ...symmetric,
            ...sameKey,
            ...encryptionContext("kms:EncryptionContext", body.SourceEncryptionContext),
          },
        },
        {
          action: "kms:ReEncryptTo",
          resource: destination,
          context: {
            ...about(destination, body.DestinationKeyId),
            ...symmetric,
            ...sameKey,
            ...encryptionContext("kms:EncryptionContext", body.DestinationEncryptionContext),
          },
        },
      ];
    }
    case "GenerateMac":
    case "VerifyMac": {
      const key = keyOf(body.KeyId);
      return [
        {
          action: `kms:${operation}`,
          resource: key,
          context: {
            ...about(key, body.KeyId),
            ...(typeof body.MacAlgorithm === "string" ? { "kms:MacAlgorithm": body.MacAlgorithm } : {}),
          },
        },
      ];
    }
    default: {
      const key = keyOf(body.KeyId);
      return [{ action: `kms:${operation}`, resource: key, context: about(key, body.KeyId) }];
    }
  }
}

/** Placeholder for the version id Secrets Manager puts in its KMS context; the fake picks its own. */
const SECRET_VERSION = "00000000-0000-4000-8000-000000000000";

function secretsmanager(
  operation: string,
  body: Json,
  directory: Directory,
  callerAccount: string,
): Authorization[] {
  const arn = directory.secretArn(String(body.SecretId ?? ""));
  const call: Authorization = {
    action: `secretsmanager:${operation}`,
    resource: arn,
    context: {
      "secretsmanager:SecretId": arn,
      ...(typeof body.VersionStage === "string" ? { "secretsmanager:VersionStage": body.VersionStage } : {}),
    },
  };
  if (operation !== "GetSecretValue") return [call];
  // Secrets Manager decrypts the value with the secret's key as the caller, so the caller needs that
  // key's permission too, through Secrets Manager only.
  return [
    call,
    {
      action: "kms:Decrypt",
      resource: directory.secretKeyArn(arn),
      via: "secretsmanager",
      context: {
        "kms:CallerAccount": callerAccount,
        "kms:ViaService": `secretsmanager.${directory.region}.amazonaws.com`,
        "kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        ...encryptionContext("kms:EncryptionContext", { SecretARN: arn, SecretVersionId: SECRET_VERSION }),
      },
    },
  ];
}

function events(operation: string, body: Json, directory: Directory): Authorization[] {
  if (operation !== "PutEvents")
    return [
      {
        action: `events:${operation}`,
        resource: directory.busArn(String(body.EventBusName ?? body.Name ?? "default")),
        context: {},
      },
    ];
  const byBus = new Map<string, Json[]>();
  for (const entry of (body.Entries ?? []) as Json[]) {
    const bus = directory.busArn(String(entry.EventBusName ?? "default"));
    byBus.set(bus, [...(byBus.get(bus) ?? []), entry]);
  }
  return [...byBus].map(([bus, entries]) => ({
    action: "events:PutEvents",
    resource: bus,
    context: {
      "events:source": [...new Set(entries.map((e) => String(e.Source)))],
      "events:detail-type": [...new Set(entries.map((e) => String(e.DetailType)))],
    },
  }));
}

/** The service a SigV4 request is signed for: `Credential=<key>/<date>/<region>/<service>/aws4_request`. */
function signedService(headers: WireRequest["headers"]): string | undefined {
  const auth = headers.authorization;
  return typeof auth === "string" ? /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(auth)?.[1] : undefined;
}

/**
 * An S3 REST request, path-style (`/<bucket>/<key>?<subresource>`, as a client with an endpoint sends
 * it), read back into its action, as the S3 documentation maps operations to actions: the object's
 * ARN (`arn:aws:s3:::bucket/key`) for object operations, the bucket's for listings and its configuration, and the
 * condition keys the request carries (`s3:if-none-match`, `s3:prefix`, ...).
 */
function s3(
  request: WireRequest,
  directory: Directory,
): { operation: string; authorizations: Authorization[] } {
  const url = new URL(request.path, "http://s3");
  const [, bucket = "", ...rest] = url.pathname.split("/");
  const key = decodeURIComponent(rest.join("/"));
  const query = url.searchParams;
  const header = (name: string) => {
    const value = request.headers[name];
    return typeof value === "string" ? value : undefined;
  };
  const bucketArn = `arn:${directory.partition}:s3:::${bucket}`;
  const object = `${bucketArn}/${key}`;
  const one = (operation: string, action: string, resource: string, context: Context = {}) => ({
    operation,
    authorizations: [{ action, resource, context }],
  });
  const method = request.method.toUpperCase();
  if (key === "") {
    const listing = method === "GET" && (query.get("list-type") === "2" || query.has("versions"));
    if (listing) {
      const context: Context = {};
      for (const [param, name] of [
        ["prefix", "s3:prefix"],
        ["delimiter", "s3:delimiter"],
        ["max-keys", "s3:max-keys"],
      ] as const) {
        const value = query.get(param);
        if (value !== null) context[name] = value;
      }
      return query.has("versions")
        ? one("ListObjectVersions", "s3:ListBucketVersions", bucketArn, context)
        : one("ListObjectsV2", "s3:ListBucket", bucketArn, context);
    }
    // The bucket's own configuration, by subresource, as the anchor bucket's policy names it.
    const configuration: Record<string, [string, string]> = {
      "PUT lifecycle": ["PutBucketLifecycleConfiguration", "s3:PutLifecycleConfiguration"],
      "PUT policy": ["PutBucketPolicy", "s3:PutBucketPolicy"],
      "DELETE policy": ["DeleteBucketPolicy", "s3:DeleteBucketPolicy"],
      "PUT object-lock": ["PutObjectLockConfiguration", "s3:PutBucketObjectLockConfiguration"],
      "PUT versioning": ["PutBucketVersioning", "s3:PutBucketVersioning"],
    };
    for (const subresource of query.keys()) {
      const found = configuration[`${method} ${subresource}`];
      if (found !== undefined) return one(found[0], found[1], bucketArn);
    }
    return one(`${method} bucket`, `s3:${method}Bucket`, bucketArn);
  }
  const bypass = header("x-amz-bypass-governance-retention") === "true";
  const withBypass = (parsed: { operation: string; authorizations: Authorization[] }) =>
    bypass
      ? {
          ...parsed,
          authorizations: [
            ...parsed.authorizations,
            { action: "s3:BypassGovernanceRetention", resource: object, context: {} },
          ],
        }
      : parsed;
  const version = query.get("versionId");
  switch (method) {
    case "PUT": {
      if (query.has("retention"))
        return withBypass(one("PutObjectRetention", "s3:PutObjectRetention", object));
      if (query.has("legal-hold")) return one("PutObjectLegalHold", "s3:PutObjectLegalHold", object);
      const context: Context = {};
      const ifNoneMatch = header("if-none-match");
      const ifMatch = header("if-match");
      if (ifNoneMatch !== undefined) context["s3:if-none-match"] = ifNoneMatch;
      if (ifMatch !== undefined) context["s3:if-match"] = ifMatch;
      return one("PutObject", "s3:PutObject", object, context);
    }
    case "GET":
    case "HEAD":
      return version === null
        ? one(method === "GET" ? "GetObject" : "HeadObject", "s3:GetObject", object)
        : one("GetObjectVersion", "s3:GetObjectVersion", object);
    case "DELETE":
      return withBypass(
        version === null
          ? one("DeleteObject", "s3:DeleteObject", object)
          : one("DeleteObjectVersion", "s3:DeleteObjectVersion", object),
      );
    default:
      return one(`${method} object`, `s3:${method}Object`, object);
  }
}

/** Reads one request; `callerAccount` is the signing principal's account (`kms:CallerAccount`). */
export function parseRequest(
  request: WireRequest,
  directory: Directory,
  callerAccount: string,
): ParsedRequest {
  const target = request.headers["x-amz-target"];
  const invoke = /^\/2015-03-31\/functions\/([^/]+)\/invocations/.exec(request.path);
  if (typeof target !== "string" && invoke !== null) {
    const name = decodeURIComponent(invoke[1] ?? "");
    const type = request.headers["x-amz-invocation-type"];
    return {
      service: "lambda",
      operation: `Invoke(${typeof type === "string" ? type : "RequestResponse"})`,
      authorizations: [
        { action: "lambda:InvokeFunction", resource: directory.functionArn(name), context: {} },
      ],
    };
  }
  if (typeof target !== "string" && signedService(request.headers) === "s3") {
    return { service: "s3", ...s3(request, directory) };
  }
  const [prefix = "", operation = ""] = typeof target === "string" ? target.split(".") : [];
  const service = TARGETS[prefix];
  let body: Json = {};
  try {
    body = request.body === "" ? {} : (JSON.parse(request.body) as Json);
  } catch {
    // An unreadable body is authorized as the bare operation; the service refuses it anyway.
  }
  switch (service) {
    case "dynamodb":
      return { service, operation, authorizations: dynamodb(operation, body, directory) };
    case "kms":
      return { service, operation, authorizations: kms(operation, body, directory, callerAccount) };
    case "secretsmanager":
      return {
        service,
        operation,
        authorizations: secretsmanager(operation, body, directory, callerAccount),
      };
    case "events":
      return { service, operation, authorizations: events(operation, body, directory) };
    default:
      return {
        service: undefined,
        operation: String(target ?? `${request.method} ${request.path}`),
        authorizations: [],
      };
  }
}
