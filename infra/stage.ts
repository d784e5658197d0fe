import { Stage, type StageProps } from "aws-cdk-lib";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "./config.ts";
import { ApiStack } from "./stacks/api-stack.ts";
import { AuditStack } from "./stacks/audit-stack.ts";
import { DataStack } from "./stacks/data-stack.ts";
import { MonitoringStack } from "./stacks/monitoring-stack.ts";
import { RotationStack } from "./stacks/rotation-stack.ts";

export interface StrongboxStageProps extends StageProps {
  readonly config: EnvironmentConfig;
}

/** One environment: deployed as a unit (`cdk deploy '<env>/*'`), sharing nothing with the others. */
export class StrongboxStage extends Stage {
  readonly config: EnvironmentConfig;
  readonly data: DataStack;
  readonly api: ApiStack;
  readonly rotation: RotationStack;
  readonly audit: AuditStack;
  readonly monitoring: MonitoringStack;

  constructor(scope: Construct, id: string, props: StrongboxStageProps) {
    super(scope, id, props);
    const { config } = props;
    this.config = config;
    const name = (part: string) => `strongbox-${config.name}-${part}`;
    this.data = new DataStack(this, "Data", { stackName: name("data"), config });
    this.api = new ApiStack(this, "Api", { stackName: name("api"), config, data: this.data });
    this.rotation = new RotationStack(this, "Rotation", {
      stackName: name("rotation"),
      config,
      data: this.data,
    });
    this.audit = new AuditStack(this, "Audit", {
      stackName: name("audit"),
      config,
      data: this.data,
      serviceRoles: [this.api.api.role, this.rotation.rotation.role],
    });
    this.monitoring = new MonitoringStack(this, "Monitoring", {
      stackName: name("monitoring"),
      config,
      httpApi: this.api.httpApi,
      functions: { api: this.api.api, rotation: this.rotation.rotation, audit: this.audit.audit },
      deadLetterQueues: { audit: this.audit.deadLetterQueue, rotation: this.rotation.deadLetterQueue },
    });
  }
}
