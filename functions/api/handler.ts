import { handle } from "hono/aws-lambda";
import { createLambdaRuntime } from "../../shared/runtime/lambda.ts";
import { createApp } from "./app.ts";
import { withResponseLimit } from "./response-limit.ts";

const runtime = await createLambdaRuntime(process.env);
export const handler = withResponseLimit(handle(createApp(runtime)), runtime.logger);
