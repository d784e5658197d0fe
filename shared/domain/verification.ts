/**
 * A rotation's verification hook (seed 002 SOP 5.1 step 5, §6.2 step 3): before a pending version is
 * promoted, the hook named by the rotation policy is asked whether it works. It is told only where the
 * value is (tenant, name, pending version), never the value: it reads that itself with its own token.
 */
export type VerifierSpec = { readonly url: string } | { readonly lambdaArn: string };

export interface VerificationCall {
  readonly tenant: string;
  readonly name: string;
  readonly pendingVersion: number;
}

export interface VerificationResult {
  readonly ok: boolean;
  /** Why, for the audit record and the error: a status or error name, never the hook's body. */
  readonly detail: string;
}

/** Calls verification hooks; implemented in shared/verifiers/ (HTTPS locally, Lambda on AWS). */
export interface RotationVerifier {
  verify(spec: VerifierSpec, call: VerificationCall): Promise<VerificationResult>;
}

export const describeVerifier = (spec: VerifierSpec) => ("url" in spec ? spec.url : spec.lambdaArn);
