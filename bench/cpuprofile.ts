// Reads a V8 .cpuprofile (node --cpu-prof) and summarises where the time went: self time per
// function, time per category (engine, proxy, Node streams, net, GC...), and inclusive time of
// the engine's and the bridge's entry points. Also a command-line tool:
//   node dist/bench/cpuprofile.js FILE.cpuprofile [top]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FnTime {
  fn: string;
  where: string;
  ms: number;
  /** Share of the busy (non-idle) time, %. */
  pct: number;
}

export interface ProfileSummary {
  label: string;
  file: string;
  /** Profiled wall time, ms. */
  totalMs: number;
  /** Non-idle time after start-up, ms (the denominator of every %). */
  busyMs: number;
  /** Time spent loading and compiling modules at start-up (left out of everything else), ms. */
  startupMs: number;
  categories: FnTime[];
  topSelf: FnTime[];
  /** Inclusive time of the project's own functions (src/...). */
  ownInclusive: FnTime[];
  /** Inclusive time of selected Node internals that show copies and small writes. */
  nodeInclusive: FnTime[];
}

function shortUrl(url: string): string {
  if (!url) return '';
  const m = /\/dist\/(src\/.*)$/.exec(url) ?? /\/(node_modules\/.*)$/.exec(url);
  if (m) return m[1]!;
  return url.replace(/^file:\/\//, '');
}

function category(cf: CallFrame): string {
  const u = cf.url;
  if (cf.functionName === '(idle)') return '(idle)';
  if (cf.functionName === '(garbage collector)') return 'garbage collector';
  if (cf.functionName === '(program)') return '(program: V8/native outside JS)';
  if (u.includes('/src/yamux/')) return 'yamux engine (src/yamux)';
  if (u.includes('/src/proxy/')) return 'proxy (src/proxy)';
  if (u.includes('/src/')) return 'other src';
  if (u.includes('node_modules/')) return 'node_modules';
  if (u.startsWith('node:internal/streams/')) return 'node streams (internal/streams)';
  if (u === 'node:net' || u.startsWith('node:internal/stream_base_commons') || u.startsWith('node:internal/net')) return 'node net/socket';
  if (u.startsWith('node:internal/buffer') || u === 'node:buffer') return 'node Buffer';
  if (u.startsWith('node:events') || u.startsWith('node:internal/event')) return 'node events';
  if (u.startsWith('node:internal/process/task_queues') || u.startsWith('node:internal/timers') || u === 'node:timers') return 'node ticks/microtasks/timers';
  if (u.startsWith('node:')) return 'node other';
  if (NATIVE_IO.has(cf.functionName)) return 'syscalls (writev/writeBuffer/read: kernel copy)';
  return 'native / builtins';
}

/** Native functions of StreamBase: the time inside them is mostly the write(2)/writev(2) syscall. */
const NATIVE_IO = new Set(['writev', 'writeBuffer', 'writeUtf8String', 'writeLatin1String', 'readStart', 'readStop', 'shutdown']);

const NODE_INTERESTING = new Set([
  'writeGeneric',
  'writevGeneric',
  'writev',
  'writeBuffer',
  'writeOrBuffer',
  'onStreamRead',
  'addChunk',
  'readableAddChunk',
  'Readable.push',
  'Readable.read',
  'Writable.write',
  'Writable.uncork',
  'clearBuffer',
  'concat',
  'allocUnsafe',
  'subarray',
  'ondata',
  'pipeOnDrain',
  'flow',
  'processTicksAndRejections',
  'emit',
  '_write',
  '_writev',
  'Socket._writeGeneric',
  'Socket._writev',
  'Socket._write',
]);

export function analyzeProfile(file: string, label: string, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // Time per sample: the delta to the next sample (the last one gets the mean).
  const totalUs = p.endTime - p.startTime;
  const meanUs = totalUs / Math.max(1, p.samples.length);
  const sampleUs = (i: number) => (i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1]! : meanUs);

  const keyOf = (cf: CallFrame) => `${cf.functionName || '(anonymous)'}\u0000${shortUrl(cf.url)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
  const self = new Map<string, number>();
  const cats = new Map<string, number>();
  const incl = new Map<string, number>();
  let idleUs = 0;
  let startupUs = 0;
  const isStartup = (f: CallFrame) =>
    f.url.startsWith('node:internal/modules/') || f.url.startsWith('node:internal/bootstrap/') || f.url.startsWith('node:internal/main/');
  const startupNode = new Map<number, boolean>();
  const underStartup = (id: number): boolean => {
    const known = startupNode.get(id);
    if (known !== undefined) return known;
    const parentId = parent.get(id);
    const v = isStartup(byId.get(id)!.callFrame) || (parentId !== undefined && underStartup(parentId));
    startupNode.set(id, v);
    return v;
  };
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    const us = sampleUs(i);
    const cf = node.callFrame;
    if (cf.functionName === '(idle)') idleUs += us;
    if (underStartup(node.id)) {
      startupUs += us;
      continue;
    }
    const k = keyOf(cf);
    self.set(k, (self.get(k) ?? 0) + us);
    const c = category(cf);
    cats.set(c, (cats.get(c) ?? 0) + us);
    // Inclusive: every distinct function on the stack gets the sample once.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (!f.functionName || f.functionName === '(root)') continue;
      const key = keyOf(f);
      if (seen.has(key)) continue;
      seen.add(key);
      incl.set(key, (incl.get(key) ?? 0) + us);
    }
  }
  const busyUs = totalUs - idleUs - startupUs;
  const toFn = ([k, us]: [string, number]): FnTime => {
    const [fn, where] = k.split('\u0000');
    return { fn: fn!, where: where!, ms: us / 1000, pct: (100 * us) / busyUs };
  };
  const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return {
    label,
    file,
    totalMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    startupMs: startupUs / 1000,
    categories: sorted(cats)
      .filter(([c]) => c !== '(idle)')
      .map(([c, us]) => ({ fn: c, where: '', ms: us / 1000, pct: (100 * us) / busyUs })),
    topSelf: sorted(self)
      .filter(([k]) => !k.startsWith('(idle)'))
      .slice(0, top)
      .map(toFn),
    ownInclusive: sorted(incl)
      .filter(([k]) => k.includes('\u0000src/'))
      .slice(0, top)
      .map(toFn),
    nodeInclusive: sorted(incl)
      .filter(([k]) => NODE_INTERESTING.has(k.split('\u0000')[0]!))
      .slice(0, 15)
      .map(toFn),
  };
}

export function renderProfile(s: ProfileSummary): string {
  const lines: string[] = [];
  const row = (f: FnTime) => `  ${f.pct.toFixed(1).padStart(5)} %  ${f.ms.toFixed(0).padStart(6)} ms  ${f.fn}${f.where ? `  (${f.where})` : ''}`;
  lines.push(`### ${s.label}: ${s.busyMs.toFixed(0)} ms busy (after ${s.startupMs.toFixed(0)} ms of start-up) of ${s.totalMs.toFixed(0)} ms profiled (${s.file})`);
  lines.push('By category (self time, % of busy):', ...s.categories.map(row));
  lines.push('Top self time:', ...s.topSelf.map(row));
  lines.push('Own code, inclusive:', ...s.ownInclusive.map(row));
  lines.push('Selected Node internals, inclusive:', ...s.nodeInclusive.map(row));
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: cpuprofile.js FILE.cpuprofile [top]\n');
    process.exit(2);
  }
  process.stdout.write(`${renderProfile(analyzeProfile(file, file, Number(process.argv[3] ?? 25)))}\n`);
}
