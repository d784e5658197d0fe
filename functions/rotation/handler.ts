// Placeholder so the Rotation stack synthesizes on the infra branch; replaced when issue 3 merges.
import type { Context, ScheduledEvent } from "aws-lambda";

export async function handler(_event: ScheduledEvent, _context: Context): Promise<never> {
  throw new Error("the rotation handler has not been merged yet (issue 3)");
}
