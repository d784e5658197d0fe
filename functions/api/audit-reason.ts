const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
/** RFC 8187 `ext-value` in UTF-8: `UTF-8'<language>'<percent-encoded bytes>`. */
const EXT_VALUE = /^utf-8'[A-Za-z0-9-]*'(.*)$/is;
const PERCENT_ESCAPE = /%[0-9A-Fa-f]{2}/;

/**
 * The text of an `X-Audit-Reason` header, in any of the three forms a client can send non-ASCII in,
 * or undefined when it claims the RFC 8187 form and is not valid percent-encoded UTF-8.
 *
 * - RFC 8187: `UTF-8''caf%C3%A9` (a language between the quotes is allowed and dropped).
 * - Percent-encoded: a value with `%XX` escapes that decode to UTF-8 is decoded; one that does not
 *   decode (`50% done`) is kept as sent, so a literal `%` next to escapes is sent as `%25`.
 * - Raw UTF-8: Node hands header bytes over one character per byte (latin1), so a value whose bytes
 *   form valid UTF-8 is decoded as UTF-8. Bytes that do not (a latin1 client) stay as latin1, and a
 *   value already holding characters past U+00FF is text already.
 *
 * Escapes are decoded before the bytes are: Hono's Lambda adapter percent-encodes every header value
 * that is not ASCII, so on Lambda raw bytes arrive escaped.
 */
export function decodeAuditReason(raw: string): string | undefined {
  const ext = EXT_VALUE.exec(raw);
  const text =
    ext !== null
      ? percentDecoded(ext[1] ?? "")
      : PERCENT_ESCAPE.test(raw)
        ? (percentDecoded(raw) ?? raw)
        : raw;
  return text === undefined ? undefined : fromRawBytes(text);
}

function fromRawBytes(raw: string): string {
  if (!/[\x80-\xff]/.test(raw) || /[\u0100-\uffff]/.test(raw)) return raw;
  try {
    return strictUtf8.decode(Buffer.from(raw, "latin1"));
  } catch {
    return raw;
  }
}

function percentDecoded(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}
