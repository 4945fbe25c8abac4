// What every section of the bench report shares (report.ts assembles the sections, which import
// this and not report.ts: no import circle).

/** One comparable number (for the regression check against the previous run). */
export interface Figure {
  key: string;
  value: number;
  unit: string;
  better: 'higher' | 'lower';
  /** The worst repetition of this run (min when higher is better, max otherwise), when known. */
  worst?: number;
}

export interface TargetResult {
  name: string;
  value: number;
  op: '>=' | '<=';
  limit: number;
  unit: string;
  pass: boolean;
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(headers), sep, ...rows.map(line)].join('\n');
}
