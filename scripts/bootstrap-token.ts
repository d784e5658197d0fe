/**
 * Prints a deployment's bootstrap admin token from its secret half, read on stdin (never argv). Only the
 * API role can read the secret back, so the operator derives the token from the value they put
 * (docs/deploy.md, "The bootstrap admin token").
 */
import { text } from "node:stream/consumers";
import { bootstrapToken } from "../shared/crypto/tokens.ts";

const minted = bootstrapToken((await text(process.stdin)).trim());
if (minted === undefined) {
  console.error("stdin must be the bootstrap secret: exactly 64 lowercase hex characters");
  process.exit(1);
}
process.stdout.write(`${minted.token}\n`);
