/**
 * Prints a deployment's bootstrap admin token from its secret half, read on stdin:
 *
 *   aws secretsmanager get-secret-value --secret-id strongbox/dev/bootstrap-admin-token \
 *     --query SecretString --output text | npx tsx scripts/bootstrap-token.ts
 */
import { text } from "node:stream/consumers";
import { bootstrapToken } from "../shared/crypto/tokens.ts";

const minted = bootstrapToken((await text(process.stdin)).trim());
if (minted === undefined) {
  console.error("stdin must be the bootstrap secret: exactly 64 lowercase hex characters");
  process.exit(1);
}
process.stdout.write(`${minted.token}\n`);
