import { App } from "aws-cdk-lib";
import { buildApp, unacknowledgedFindings } from "./build.ts";
import { ENVIRONMENT_NAMES } from "./config.ts";

// `cdk synth` runs this file; -c stages=dev,staging narrows which stages are built (default: all three).
const app = new App();
const requested = app.node.tryGetContext("stages");
buildApp(app, {
  stages: typeof requested === "string" && requested !== "" ? requested.split(",") : ENVIRONMENT_NAMES,
  env: process.env,
});
const findings = unacknowledgedFindings(app.synth().directory);
if (findings.length > 0) {
  // The CLI leaves the validation report in cdk.out without failing; an unacknowledged finding must fail.
  for (const finding of findings) console.error(finding);
  console.error(`${findings.length} unacknowledged cdk-nag finding(s); see infra/nag-acknowledgements.ts`);
  process.exitCode = 1;
}
