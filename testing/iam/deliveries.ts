import { randomUUID } from "node:crypto";
import type { FunctionName } from "../../infra/bundling.ts";
import type { LoopbackStage } from "./loopback-stage.ts";

/**
 * What AWS would deliver to a function after the calls recorded so far, since neither Lambda nor an
 * EventBridge bus runs here: asynchronous invocations of it (Lambda Invoke, answered by the IAM proxy),
 * and events put on a bus that one of the stage's rules routes to it. Each is taken once.
 */
export function deliveriesFor(stage: LoopbackStage, name: FunctionName, taken: Set<unknown>): unknown[] {
  const fn = stage.shape.functions[name];
  const functionArn = `arn:${stage.shape.stage.partition}:lambda:${stage.shape.stage.region}:${stage.shape.stage.account}:function:${fn.functionName}`;
  const invoked = stage.proxy.invocations
    .filter((i) => !taken.has(i) && i.functionArn === functionArn && i.type === "Event")
    .map((i) => {
      taken.add(i);
      return JSON.parse(i.payload || "{}") as unknown;
    });
  const rules = stage.shape.stage.resources.filter(
    (r) =>
      r.type === "AWS::Events::Rule" &&
      r.properties.EventPattern !== undefined &&
      ((r.properties.Targets ?? []) as { Arn: string }[]).some((t) => t.Arn === functionArn),
  );
  const routed = stage.events.received
    .filter((entry) => !taken.has(entry))
    .map((entry) => ({
      entry,
      event: {
        version: "0",
        id: randomUUID(),
        "detail-type": entry.DetailType,
        source: entry.Source,
        account: stage.shape.stage.account,
        time: new Date().toISOString(),
        region: stage.shape.stage.region,
        resources: [],
        detail: JSON.parse(entry.Detail ?? "{}") as unknown,
      },
    }))
    .filter(({ entry, event }) =>
      rules.some(
        (rule) =>
          String(rule.properties.EventBusName ?? "default")
            .split("/")
            .pop() === (entry.EventBusName ?? "default").split("/").pop() &&
          matches(rule.properties.EventPattern, event),
      ),
    )
    .map(({ entry, event }) => {
      taken.add(entry);
      return event;
    });
  return [...invoked, ...routed];
}

/** EventBridge pattern matching, for the forms the stage's rules use: literals, prefix, anything-but. */
function matches(pattern: unknown, value: unknown): boolean {
  if (Array.isArray(pattern)) {
    return pattern.some((option) => {
      if (option !== null && typeof option === "object") {
        const o = option as Record<string, unknown>;
        if ("prefix" in o) return typeof value === "string" && value.startsWith(String(o.prefix));
        if ("anything-but" in o) {
          const but = o["anything-but"];
          if (but !== null && typeof but === "object" && "prefix" in (but as object)) {
            return !(
              typeof value === "string" && value.startsWith(String((but as { prefix: unknown }).prefix))
            );
          }
          return ![but].flat().includes(value);
        }
        if ("exists" in o) return (value !== undefined) === Boolean(o.exists);
        return false;
      }
      return Array.isArray(value) ? value.includes(option) : value === option;
    });
  }
  if (pattern !== null && typeof pattern === "object") {
    const object = (value ?? {}) as Record<string, unknown>;
    return Object.entries(pattern as Record<string, unknown>).every(([key, sub]) =>
      matches(sub, object[key]),
    );
  }
  return pattern === value;
}
