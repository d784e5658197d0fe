import type { IamContract, RecordedCall } from "./iam-contract.ts";

/**
 * The recorded calls as a Markdown table, one row per function, action, resource and notable context,
 * with a count: what a note about the deployed shape can paste. Key ARNs are shown by alias, tenant and
 * token ids by their key prefix (`T#*`), so the rows do not depend on one run's ids.
 */
export function callTable(calls: readonly RecordedCall[], contract: IamContract): string {
  const short = (arn: string): string => {
    const key = contract.keys.find((k) => k.arn === arn);
    if (key !== undefined) return `key ${key.aliases[0] ?? key.keyId}`;
    return arn.split(":").slice(5).join(":") || arn;
  };
  const prefix = (value: string) =>
    value.includes("#") ? `${value.slice(0, value.indexOf("#") + 1)}*` : value;
  const notable = (call: RecordedCall): string => {
    const c = call.context;
    const parts: string[] = [];
    const leading = c["dynamodb:LeadingKeys"];
    if (leading !== undefined)
      parts.push(`LeadingKeys ${[...new Set([leading].flat().map(prefix))].join(",")}`);
    if (c["dynamodb:Select"] !== undefined && call.action.endsWith("Scan"))
      parts.push(`Select ${c["dynamodb:Select"]}`);
    const keys = c["kms:EncryptionContextKeys"];
    if (keys !== undefined) parts.push(`context ${[keys].flat().join(",")}`);
    if (c["kms:ViaService"] !== undefined) parts.push(`via ${c["kms:ViaService"]}`);
    if (c["kms:ReEncryptOnSameKey"] !== undefined) parts.push(`same key ${c["kms:ReEncryptOnSameKey"]}`);
    for (const name of ["events:source", "events:detail-type"]) {
      if (c[name] !== undefined) parts.push(`${name.split(":")[1]} ${[c[name]].flat().join(",")}`);
    }
    return parts.join("; ");
  };
  const rows = new Map<string, { row: string[]; count: number }>();
  for (const call of calls) {
    const row = [
      call.principal,
      call.action,
      short(call.resource),
      notable(call),
      call.allowed ? "allow" : `**deny** ${call.reason}`,
    ];
    const key = row.join("|");
    const known = rows.get(key);
    if (known === undefined) rows.set(key, { row, count: 1 });
    else known.count++;
  }
  const order = (p: string) => ["api", "rotation", "audit"].indexOf(p) + 1 || 9;
  const sorted = [...rows.values()].sort(
    (a, b) =>
      order(a.row[0] ?? "") - order(b.row[0] ?? "") ||
      (a.row[1] ?? "").localeCompare(b.row[1] ?? "") ||
      (a.row[2] ?? "").localeCompare(b.row[2] ?? ""),
  );
  return [
    "| function | action | resource | notable context | calls | decision |",
    "| --- | --- | --- | --- | ---: | --- |",
    ...sorted.map(
      ({ row: [fn, action, resource, context, decision], count }) =>
        `| ${fn} | ${action} | ${resource} | ${context} | ${count} | ${decision} |`,
    ),
  ].join("\n");
}
