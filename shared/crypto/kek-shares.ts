import { combine, split } from "shamir-secret-sharing";
import { KEK_BYTES } from "./kek-source.ts";
import { kekFingerprint } from "./local-keyring.ts";

/**
 * Shamir backups of a local KEK (seed 001 §3), on the audited `shamir-secret-sharing` (GF(2^8), the
 * scheme Vault's unseal keys use). The library checks nothing about what it reconstructs, so every
 * share names the KEK it belongs to and the threshold, and a combination is accepted only when the
 * result has that fingerprint.
 *
 * A share is one line: `strongbox-kek-share/v1:<fingerprint>:<index>:<threshold>:<base64>`. The index
 * is for people (which envelope, which safe); the x coordinate the maths needs is inside the bytes.
 */
const PREFIX = "strongbox-kek-share/v1";
const SHARE_LINE =
  /^strongbox-kek-share\/v1:(kek-[0-9a-f]{16}):([1-9][0-9]{0,2}):([1-9][0-9]{0,2}):([A-Za-z0-9+/]+={0,2})$/;

export interface KekShare {
  readonly fingerprint: string;
  readonly index: number;
  readonly threshold: number;
  readonly line: string;
}

/** Why shares were refused: a message for the operator, never holding share bytes. */
export class KekShareError extends Error {
  override readonly name = "KekShareError";
}

export async function splitKek(kek: Uint8Array, shares: number, threshold: number): Promise<KekShare[]> {
  if (kek.length !== KEK_BYTES) throw new KekShareError(`a KEK is ${KEK_BYTES} bytes`);
  if (!Number.isInteger(threshold) || threshold < 2)
    throw new KekShareError("--threshold must be at least 2");
  if (!Number.isInteger(shares) || shares < threshold || shares > 255) {
    throw new KekShareError("--shares must be at least the threshold and at most 255");
  }
  const fingerprint = kekFingerprint(kek);
  const parts = await split(kek, shares, threshold);
  return parts.map((bytes, i) => {
    const index = i + 1;
    const line = `${PREFIX}:${fingerprint}:${index}:${threshold}:${Buffer.from(bytes).toString("base64")}`;
    return { fingerprint, index, threshold, line };
  });
}

function parseShare(text: string, where: string): KekShare & { bytes: Uint8Array } {
  const match = SHARE_LINE.exec(text.trim());
  if (match === null) throw new KekShareError(`${where} is not a Strongbox KEK share`);
  const [, fingerprint, index, threshold, body] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
  ];
  const bytes = new Uint8Array(Buffer.from(body, "base64"));
  // Each share is the KEK's length plus the one-byte x coordinate.
  if (bytes.length !== KEK_BYTES + 1) throw new KekShareError(`${where} is truncated or padded`);
  return { fingerprint, index: Number(index), threshold: Number(threshold), line: text.trim(), bytes };
}

/**
 * Rebuilds the KEK from at least `threshold` shares of one split, or refuses: shares of different
 * KEKs or splits, repeated shares, too few, or a result whose fingerprint is not the one they name.
 */
export async function combineKek(
  texts: readonly { readonly text: string; readonly where: string }[],
): Promise<{ kek: Uint8Array; fingerprint: string }> {
  const shares = texts.map(({ text, where }) => parseShare(text, where));
  const [first] = shares;
  if (first === undefined) throw new KekShareError("no shares given");
  for (const share of shares) {
    if (share.fingerprint !== first.fingerprint || share.threshold !== first.threshold) {
      throw new KekShareError(
        `shares of different KEKs or splits: ${first.fingerprint} (threshold ${first.threshold}) and ${share.fingerprint} (threshold ${share.threshold})`,
      );
    }
  }
  const xs = new Set(shares.map((share) => share.bytes[KEK_BYTES]));
  if (xs.size !== shares.length) throw new KekShareError("the same share was given twice");
  if (shares.length < first.threshold) {
    throw new KekShareError(`${shares.length} shares given; this split needs ${first.threshold}`);
  }
  const kek = await combine(shares.map((share) => share.bytes));
  const fingerprint = kekFingerprint(kek);
  if (fingerprint !== first.fingerprint) {
    throw new KekShareError(
      `the shares combine to ${fingerprint}, not ${first.fingerprint}: one of them is damaged or from another split`,
    );
  }
  return { kek, fingerprint };
}
