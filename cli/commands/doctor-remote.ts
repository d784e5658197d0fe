import { ProblemFound } from "../errors.ts";
import type { Finding } from "../output.ts";
import { type Remote, remoteProblem } from "../remote.ts";

/** Against a running service: the same questions as offline, asked of /health and the admin routes. */
export async function doctorRemote(remote: Remote, options: { tenant?: string }): Promise<Finding[]> {
  const findings: Finding[] = [];
  const ask = async <T>(check: string, call: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await call();
    } catch (error) {
      const problem = remoteProblem(error, remote.url);
      if (!(problem instanceof ProblemFound)) throw problem;
      findings.push({
        check,
        status: "problem",
        detail: problem.message,
        ...(problem.fix === undefined ? {} : { fix: problem.fix }),
      });
      return undefined;
    }
  };
  const health = await ask("service", () => remote.operator.health());
  if (health === undefined) return findings;
  findings.push({
    check: "service",
    status: "ok",
    detail: `${remote.url} answers /health: ${health.status}`,
  });

  const report = await ask("health report", () => remote.operator.healthReport());
  if (report !== undefined) {
    findings.push({
      check: "KEK",
      status: report.keyring.status === "ok" ? "ok" : "problem",
      detail: `${report.keyring.kind} keyring, active KEK ${report.keyring.activeKekId}: ${report.keyring.status}`,
      ...(report.keyring.status === "ok"
        ? {}
        : { fix: "the service cannot reach its KEK keeper: check KMS access or its KEK variable" }),
    });
    findings.push({
      check: "store",
      status: report.store.status === "ok" ? "ok" : "problem",
      detail: `the table is ${report.store.status === "ok" ? "reachable" : "unreachable"}`,
      ...(report.store.status === "ok"
        ? {}
        : { fix: "check the table's name, region and the function's role" }),
    });
    for (const problem of report.problems) {
      findings.push({
        check: "health",
        status: "problem",
        detail: problem,
        fix: "see docs/operations.md (health problems)",
      });
    }
    for (const warning of report.warnings)
      findings.push({ check: "health", status: "info", detail: warning });
  }

  const keks = await ask("KEK coverage", () => remote.operator.kekReport());
  if (keks !== undefined) {
    const missing = keks.keks.filter((k) => k.configured === "no" && (k.dataKeys > 0 || k.registered));
    findings.push(
      missing.length === 0
        ? {
            check: "KEK coverage",
            status: "ok",
            detail: `the service's KEKs cover every KEK the table depends on`,
          }
        : {
            check: "KEK coverage",
            status: "problem",
            detail: missing
              .map((k) => `${k.dataKeys} DEKs on KEK ${k.kekId}, which the service lacks`)
              .join("; "),
            fix: "configure that KEK as a previous one in the service's environment (strongbox kek fingerprint names a candidate)",
          },
    );
  }

  if (options.tenant !== undefined) {
    const tenant = options.tenant;
    const status = await ask(`tenant ${tenant}`, () => remote.operator.dekRotation(tenant));
    if (status !== undefined) {
      for (const key of status.dataKeys) {
        findings.push({
          check: `tenant ${tenant} DEK v${key.version}`,
          status: "info",
          detail: `wrapped by ${key.kekId}; ${key.items} ciphertexts`,
        });
      }
    }
  }
  for (const scope of options.tenant === undefined ? ["_system"] : ["_system", options.tenant]) {
    const verified = await ask(`audit ${scope}`, () => remote.operator.auditVerify(scope));
    if (verified !== undefined) {
      const summary = (verified as { summary?: string }).summary ?? "";
      findings.push(
        verified.intact
          ? { check: `audit ${scope}`, status: "ok", detail: summary }
          : {
              check: `audit ${scope}`,
              status: "problem",
              detail: summary,
              fix: "keep the table as it is for the investigation and follow docs/operations.md (verifying audit chains)",
            },
      );
    }
  }
  return findings;
}
