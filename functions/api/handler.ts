import { handle } from "hono/aws-lambda";
import { createLambdaRuntime } from "../../shared/runtime/lambda.ts";
import { createApp } from "./app.ts";
import { withResponseLimit } from "./response-limit.ts";

// The verify routes check chains against the anchor bucket, which this role may read but not write.
const runtime = await createLambdaRuntime(process.env, { anchors: "read" });
export const handler = withResponseLimit(handle(createApp(runtime)), runtime.logger);
