// Placeholder so the Audit stack synthesizes on the infra branch; replaced when issue 4 merges.
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";

export async function handler(_event: SQSEvent, _context: Context): Promise<SQSBatchResponse> {
  throw new Error("the audit handler has not been merged yet (issue 4)");
}
