import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { deploymentTarget, type EnvironmentName, environmentConfig, isEnvironmentName } from "./config.ts";
import { ACKNOWLEDGEMENTS, type Acknowledgement, acknowledgeFindings } from "./nag-acknowledgements.ts";
import { StrongboxStage } from "./stage.ts";

/**
 * Adds one Stage per requested environment to the app, each checked by cdk-nag's AwsSolutions pack. A
 * finding that is not acknowledged in nag-acknowledgements.ts fails synthesis.
 */
export function buildApp(
  app: App,
  options: {
    readonly stages: readonly string[];
    readonly env: Record<string, string | undefined>;
    /** Only the cdk-nag test passes fewer, to prove each acknowledgement is still needed. */
    readonly acknowledgements?: readonly Acknowledgement[];
    /** Only tests that compare bundles turn cdk-nag off, to skip its cost; synth always checks. */
    readonly nag?: boolean;
  },
): Record<string, StrongboxStage> {
  const target = deploymentTarget((key) => app.node.tryGetContext(key), options.env);
  const stages: Partial<Record<EnvironmentName, StrongboxStage>> = {};
  for (const name of options.stages) {
    if (!isEnvironmentName(name)) throw new Error(`unknown environment "${name}"; known: dev, staging, prod`);
    const stage = new StrongboxStage(app, name, { config: environmentConfig(name), env: target });
    if (options.nag !== false) {
      Validations.of(stage).addPlugins(new AwsSolutionsChecks(stage));
      acknowledgeFindings(stage, options.acknowledgements ?? ACKNOWLEDGEMENTS);
    }
    stages[name] = stage;
  }
  return stages;
}

interface ValidationReport {
  readonly pluginReports: readonly {
    readonly pluginName: string;
    readonly violations: readonly {
      readonly ruleName: string;
      readonly description: string;
      readonly violatingConstructs: readonly { readonly constructPath: string }[];
    }[];
  }[];
}

/** One line per finding of the assembly's validation report that no acknowledgement covers. */
export function unacknowledgedFindings(assemblyDirectory: string): string[] {
  const path = join(assemblyDirectory, "validation-report.json");
  if (!existsSync(path)) return [];
  const report = JSON.parse(readFileSync(path, "utf8")) as ValidationReport;
  return report.pluginReports.flatMap((plugin) =>
    plugin.violations.flatMap((violation) =>
      violation.violatingConstructs.map(
        (construct) => `${construct.constructPath}: ${violation.ruleName} ${violation.description}`,
      ),
    ),
  );
}
