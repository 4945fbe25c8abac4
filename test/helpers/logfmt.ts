// A strict logfmt reader with the rules of Kata's kata-log-parser: key=value pairs, values bare
// or Go-quoted, no duplicate keys. Throws on anything else, so a test can parse every line.

const ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '"': '"', '\\': '\\' };

export function parseLogfmt(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < line.length) {
    if (line[i] === ' ') {
      i++;
      continue;
    }
    const eq = line.indexOf('=', i);
    if (eq < 0) throw new Error(`logfmt: key without value at ${i}: ${line}`);
    const key = line.slice(i, eq);
    if (!/^[A-Za-z0-9_.\-@/]+$/.test(key)) throw new Error(`logfmt: bad key "${key}": ${line}`);
    if (key in out) throw new Error(`logfmt: duplicate key "${key}": ${line}`);
    i = eq + 1;
    let value = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new Error(`logfmt: unterminated quote: ${line}`);
        const c = line[i]!;
        if (c === '"') {
          i++;
          break;
        }
        if (c === '\\') {
          const e = line[i + 1]!;
          if (ESCAPES[e] !== undefined) {
            value += ESCAPES[e];
            i += 2;
          } else if (e === 'x' || e === 'u' || e === 'U') {
            const len = e === 'x' ? 2 : e === 'u' ? 4 : 8;
            const hex = line.slice(i + 2, i + 2 + len);
            if (!/^[0-9a-f]+$/i.test(hex) || hex.length !== len) throw new Error(`logfmt: bad escape: ${line}`);
            value += String.fromCodePoint(parseInt(hex, 16));
            i += 2 + len;
          } else {
            throw new Error(`logfmt: bad escape \\${e}: ${line}`);
          }
        } else {
          value += c;
          i++;
        }
      }
      if (i < line.length && line[i] !== ' ') throw new Error(`logfmt: text after closing quote: ${line}`);
    } else {
      const end = line.indexOf(' ', i);
      value = line.slice(i, end < 0 ? line.length : end);
      if (value.includes('"')) throw new Error(`logfmt: quote inside a bare value: ${line}`);
      i = end < 0 ? line.length : end;
    }
    out[key] = value;
  }
  return out;
}
