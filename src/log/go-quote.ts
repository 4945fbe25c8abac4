/** logrus leaves a value bare only when every character is in this set. */
const BARE = /^[A-Za-z0-9\-._/@^+]+$/;

/** A logfmt value as logrus's TextFormatter writes it: bare, or quoted like Go's strconv.Quote. */
export function logfmtValue(value: string): string {
  return BARE.test(value) ? value : goQuote(value);
}

const SHORT_ESCAPES: Record<number, string> = {
  0x07: '\\a',
  0x08: '\\b',
  0x0c: '\\f',
  0x0a: '\\n',
  0x0d: '\\r',
  0x09: '\\t',
  0x0b: '\\v',
  0x22: '\\"',
  0x5c: '\\\\',
};

/**
 * What Go's strconv.Quote escapes: controls, quote, backslash, and the unprintable runes (C1
 * controls, soft hyphen, zero-width and direction marks, BOM, noncharacters, lone surrogates).
 * A surrogate pair comes first in the alternation so that it is kept whole.
 */
const ESCAPED = /[\ud800-\udbff][\udc00-\udfff]|[\x00-\x1f"\\\x7f-\x9f\xad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufffe\uffff\ud800-\udfff]/g;

/** Go's strconv.Quote: printable runes stay, the rest become \a-style, \xHH or \uHHHH escapes. */
export function goQuote(s: string): string {
  return `"${s.replace(ESCAPED, escapeOne)}"`;
}

function escapeOne(ch: string): string {
  if (ch.length === 2) return ch;
  const cp = ch.charCodeAt(0);
  const short = SHORT_ESCAPES[cp];
  if (short) return short;
  return cp < 0x20 || cp === 0x7f ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u${cp.toString(16).padStart(4, '0')}`;
}
