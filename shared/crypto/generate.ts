import { randomInt, randomUUID } from "node:crypto";
import type { GeneratorSpec } from "../domain/types.ts";

const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const DEFAULT_ALPHABETS: Record<GeneratorSpec["kind"], string> = {
  token: ALPHANUMERIC,
  password: `${ALPHANUMERIC}!#$%&()*+,-.:;<=>?@[]^_{|}~`,
};

/** The characters a generator draws from, without repeats. */
export function generatorAlphabet(spec: GeneratorSpec): string {
  return [...new Set(spec.alphabet ?? DEFAULT_ALPHABETS[spec.kind])].join("");
}

/** The entropy of one generated value in bits: length × log2(distinct characters). */
export function generatorEntropyBits(spec: GeneratorSpec): number {
  return spec.length * Math.log2(generatorAlphabet(spec).length);
}

/** A fresh value from the CSPRNG; randomInt is unbiased, so every character is equally likely. */
export function generateSecretValue(spec: GeneratorSpec): string {
  const alphabet = [...generatorAlphabet(spec)];
  let value = "";
  for (let i = 0; i < spec.length; i += 1) value += alphabet[randomInt(alphabet.length)];
  return value;
}

/** A unique clientRequestToken for a rotation the caller started without one. */
export function newRequestToken(prefix: string): string {
  return `${prefix}${randomUUID()}`;
}

/** Whether a value could have come from the generator: the check a rotation's test step makes. */
export function matchesGenerator(spec: GeneratorSpec, value: string): boolean {
  const alphabet = new Set(generatorAlphabet(spec));
  const chars = [...value];
  return chars.length === spec.length && chars.every((c) => alphabet.has(c));
}
