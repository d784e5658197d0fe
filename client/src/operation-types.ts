import type { operations } from "./api-types.ts";

/** The JSON body an operation answers with at a status, as the OpenAPI document declares it. */
export type Json<
  O extends keyof operations,
  S extends keyof operations[O]["responses"],
> = operations[O]["responses"][S] extends {
  content: { "application/json": infer B };
}
  ? B
  : never;

/** The JSON body an operation takes. */
export type Body<O extends keyof operations> = operations[O]["requestBody"] extends
  | { content: { "application/json": infer B } }
  | undefined
  ? B
  : never;

/** The query an operation takes. */
export type Query<O extends keyof operations> = NonNullable<operations[O]["parameters"]["query"]>;
