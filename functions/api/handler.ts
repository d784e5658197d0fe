import { handle } from "hono/aws-lambda";
import { createLambdaRuntime } from "../../shared/runtime/lambda.ts";
import { createApp } from "./app.ts";

export const handler = handle(createApp(await createLambdaRuntime(process.env)));
