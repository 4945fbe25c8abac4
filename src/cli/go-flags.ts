export class UsageError extends Error {}

/**
 * Rewrites Go `flag`-package syntax into GNU long options for commander. Go accepts `-name`,
 * `--name`, `-name=value` and `-name value` alike, and booleans as `-debug` or `-debug=false`;
 * the Kata 1.x runtime uses the single-dash forms. Only flags in `known` are rewritten, so a
 * single-dash word commander would split into letters is reported instead.
 */
export function normalizeGoFlags(argv: readonly string[], known: { values: Set<string>; booleans: Set<string> }): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      out.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq < 0 ? body : body.slice(0, eq);
    if (name === 'h') {
      out.push('--help');
    } else if (known.booleans.has(name)) {
      const value = eq < 0 ? 'true' : body.slice(eq + 1);
      if (!/^(1|t|true|TRUE|True|0|f|false|FALSE|False)$/.test(value)) {
        throw new UsageError(`invalid boolean value "${value}" for flag -${name}`);
      }
      if (/^(1|t|true)$/i.test(value)) out.push(`--${name}`);
    } else if (known.values.has(name)) {
      out.push(eq < 0 ? `--${name}` : `--${name}=${body.slice(eq + 1)}`);
    } else if (!arg.startsWith('--')) {
      throw new UsageError(`flag provided but not defined: -${name}`);
    } else {
      out.push(arg); // commander reports unknown long options itself
    }
  }
  return out;
}
