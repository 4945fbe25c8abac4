// Turns the measurements into tables (Markdown, readable in a terminal and pasteable into
// BENCHMARKS.md), PASS/FAIL per target, and the comparison with the previous results.json.
import { floodFigures, floodsSection, floodTargets, type FloodsResult } from './floods.js';
import { hostFigures, hostSection, hostTargets, type HostFigures } from './host.js';
import { podMemoryFigures, podMemorySection, podMemoryTargets, type PodMemoryFigures } from './pod-memory.js';
import { neighboursFigures, neighboursSection, neighboursTargets, type NeighboursFigures } from './neighbours.js';
import { reloadFigures, reloadSection, reloadTargets, type ReloadFigures } from './reload.js';
import type { LatencyPhase } from './latency.js';
import type { DensityFigures, FlagRow } from './memory.js';
import type { PodDensity } from './pods.js';
import type { PodStartFigures } from './pod-start.js';
import type { BurstFigures } from './pod-burst.js';
import type { MemSample } from './proc.js';
import type { ProfileSummary } from './cpuprofile.js';
import { ratio, type Summary } from './stats.js';
import type { ScenarioResult } from './throughput.js';
import { table, type Figure, type TargetResult } from './report-parts.js';

export { table, type Figure, type TargetResult } from './report-parts.js';

export interface Machine {
  nproc: number;
  cpu: string;
  memGiB: number;
  kernel: string;
  node: string;
  go: string;
}

export interface Results {
  schema: 1;
  date: string;
  machine: Machine;
  config: Record<string, unknown>;
  /** Path key -> description. */
  paths: Record<string, string>;
  throughput?: ScenarioResult[];
  latency?: LatencyPhase;
  density?: DensityFigures;
  pods?: PodDensity;
  podStart?: PodStartFigures;
  podBurst?: BurstFigures;
  floods?: FloodsResult;
  host?: HostFigures;
  neighbours?: NeighboursFigures;
  podMemory?: PodMemoryFigures;
  reload?: ReloadFigures;
  peak?: Record<string, MemSample>;
  flags?: FlagRow[];
  profile?: ProfileSummary[];
  figures: Figure[];
  targets: TargetResult[];
  regressions?: Regression[];
  durationSeconds: number;
}

export interface Regression {
  key: string;
  previous: number;
  current: number;
  change: number;
  unit: string;
  /** Also worse than the previous run's worst repetition (not just run-to-run noise). */
  beyondSpread: boolean | null;
}

const MiB = 1 << 20;
export const BASELINE = 'plain';
export const PROXY = 'proxy';
/** The Go kata-proxy's data path (test/go-peer/proxy), and a real kata-proxy when one is given. */
export const GO_PROXY = 'go-proxy';
export const KATA_PROXY = 'kata-proxy';

// ---- formatting -------------------------------------------------------------------------------

const num = (v: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : '–');
const spread = (s: Summary, digits = 0) => (s.n > 1 ? ` [${num(s.min, digits)}–${num(s.max, digits)}]` : '');
const x = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : '–');
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

function figureTable(
  paths: string[],
  labels: Record<string, string>,
  rows: { name: string; get: (path: string) => Summary | undefined; digits?: number }[],
): string {
  return table(
    ['', ...paths.map((p) => labels[p] ?? p)],
    rows.map((r) => {
      const base = r.get(BASELINE)?.median;
      return [
        r.name,
        ...paths.map((p) => {
          const s = r.get(p);
          if (!s || s.n === 0) return '–';
          const rel = p === BASELINE ? '' : ` (${x(ratio(s.median, base))})`;
          return `${num(s.median, r.digits ?? 0)}${spread(s, r.digits ?? 0)}${rel}`;
        }),
      ];
    }),
  );
}

export function throughputTable(results: Results): string {
  const scenarios = results.throughput ?? [];
  const paths = Object.keys(results.paths).filter((p) => scenarios.some((s) => s.mibps[p]));
  return figureTable(
    paths,
    results.paths,
    scenarios.map((s) => ({
      name: `${s.dir} ×${s.streams} (${s.bytesPerStream / MiB} MiB/stream)`,
      get: (p: string) => s.mibps[p],
    })),
  );
}

/**
 * The proxy hop's own cost (proxy ÷ engine direct: the same yamux engine and the same Go guest,
 * with and without the daemon in between) and the CPU use of every process on each path.
 */
export function hopTable(results: Results): string {
  // relay ÷ plain is the same hop without yamux: what any extra process in the path costs here.
  const scenarios = results.throughput ?? [];
  const paths = Object.keys(results.paths).filter((p) => scenarios.some((s) => Object.keys(s.cpu?.[p] ?? {}).length > 0));
  const roles = (p: string) => Object.keys(scenarios.find((s) => s.cpu?.[p])?.cpu[p] ?? {});
  const refs = referenceProxies(results);
  const rows: string[][] = scenarios.map((s) => [
    `${s.dir} ×${s.streams} MiB/s`,
    x(ratio(s.mibps[PROXY]?.median, s.mibps.engine?.median)),
    x(ratio(s.mibps.relay?.median, s.mibps[BASELINE]?.median)),
    ...refs.map((g) => x(ratio(s.mibps[PROXY]?.median, s.mibps[g]?.median))),
    ...paths.map((p) => (s.cpu?.[p] ? Object.values(s.cpu[p]!).join(' / ') : '–')),
  ]);
  const l = results.latency;
  if (l) {
    for (const [kind, name] of [['rr', 'req/resp'], ['connect', 'connect+req+close']] as const) {
      for (const q of ['p50', 'p99'] as const) {
        rows.push([
          `${name} ${q}`,
          x(ratio(l[kind][PROXY]?.[q].median, l[kind].engine?.[q].median)),
          x(ratio(l[kind].relay?.[q].median, l[kind][BASELINE]?.[q].median)),
          ...refs.map((g) => x(ratio(l[kind][PROXY]?.[q].median, l[kind][g]?.[q].median))),
          ...paths.map(() => ''),
        ]);
      }
    }
    rows.push([
      'storm last answer',
      '',
      x(ratio(l.storm.relay?.lastAnswerMs.median, l.storm[BASELINE]?.lastAnswerMs.median)),
      ...refs.map((g) => x(ratio(l.storm[PROXY]?.lastAnswerMs.median, l.storm[g]?.lastAnswerMs.median))),
      ...paths.map(() => ''),
    ]);
  }
  return table(
    ['', 'proxy ÷ engine', 'relay ÷ plain', ...refs.map((g) => `ours ÷ ${g === GO_PROXY ? 'Go proxy' : g}`), ...paths.map((p) => `CPU % ${results.paths[p] ?? p} (${roles(p).join('/')})`)],
    rows,
  );
}

/** The Go proxies measured in this run (ours is compared with each). */
function referenceProxies(results: Results): string[] {
  return [GO_PROXY, KATA_PROXY].filter((p) => results.paths[p]);
}

/** CPU-seconds of each proxy process per GiB moved, throughput scenario by scenario. */
export function cpuPerGiBTable(results: Results): string {
  const proxies = [PROXY, ...referenceProxies(results)];
  const refs = referenceProxies(results);
  return table(
    ['proxy process CPU-s per GiB', ...proxies.map((p) => results.paths[p] ?? p), ...refs.map((g) => `ours ÷ ${g === GO_PROXY ? 'Go proxy' : g}`)],
    (results.throughput ?? []).map((s) => {
      const of = (p: string) => s.cpuSecondsPerGiB?.[p]?.proxy;
      return [`${s.dir} ×${s.streams}`, ...proxies.map((p) => num(of(p) ?? NaN, 2)), ...refs.map((g) => x(ratio(of(PROXY), of(g))))];
    }),
  );
}

/** The bare node start a subject compares with: the one of its Node line (`proxy@v24.1.0` -> `node@v24.1.0`). */
const bareOf = (k: string) => (k.includes('@') ? `node@${k.slice(k.indexOf('@') + 1)}` : 'node');
const isBare = (k: string) => k === 'node' || k.startsWith('node@');

/** Pod-start subjects that are not throughput paths. */
const START_LABELS: Record<string, string> = {
  hosted: 'per-pod handle → host (bin/kata-proxy-hosted)',
  'hosted-direct': 'per-pod handle → host (dist/native/kata-proxy-handle, the same program)',
  'proxy-bundle': 'proxy → Go, from the bundle (no snapshot)',
};

export function podStartTable(results: Results): string {
  const ps = results.podStart!;
  const cells = (by: Record<string, Summary>, k: string) => {
    const s = by[k];
    if (!s) return ['–', '', ''];
    return [
      `${num(s.median, 1)}${spread(s, 1)}`,
      isBare(k) ? '' : x(ratio(s.median, by[bareOf(k)]?.median)),
      isBare(k) || k === GO_PROXY ? '' : x(ratio(s.median, by[GO_PROXY]?.median)),
    ];
  };
  const label = (k: string) => (isBare(k) ? `bare \`node -e 0\`${k === 'node' ? '' : ` (${k.slice(5)})`}` : (START_LABELS[k] ?? results.paths[k] ?? k));
  return table(
    ['', 'wall ms', '÷ bare node', '÷ Go proxy', 'CPU ms', '÷ bare node', '÷ Go proxy', 'of the CPU: host'],
    Object.keys(ps.ms).map((k) => [
      label(k),
      ...cells(ps.ms, k),
      ...cells(ps.cpuMs ?? {}, k),
      ps.companionCpuMs?.[k] ? num(ps.companionCpuMs[k]!.median, 1) : '',
    ]),
  );
}

export function podBurstTable(results: Results): string {
  const b = results.podBurst!;
  return table(
    [`${b.pods} pods started at once`, 'all answered after, ms', '÷ Go proxy', 'CPU ms, all', '÷ Go proxy'],
    Object.keys(b.allAnsweredMs).map((k) => [
      k === 'hosted' ? 'per-pod handles → host' : (START_LABELS[k] ?? results.paths[k] ?? k),
      `${num(b.allAnsweredMs[k]!.median)}${spread(b.allAnsweredMs[k]!)}`,
      k === GO_PROXY ? '' : x(ratio(b.allAnsweredMs[k]!.median, b.allAnsweredMs[GO_PROXY]?.median)),
      `${num(b.cpuMs[k]!.median)}${spread(b.cpuMs[k]!)}`,
      k === GO_PROXY ? '' : x(ratio(b.cpuMs[k]!.median, b.cpuMs[GO_PROXY]?.median)),
    ]),
  );
}

export function latencyTable(results: Results): string {
  const l = results.latency!;
  const paths = Object.keys(results.paths).filter((p) => l.rr[p]);
  return figureTable(paths, results.paths, [
    { name: `req/resp ${l.size} B p50 µs`, get: (p) => l.rr[p]?.p50 },
    { name: 'req/resp p99 µs', get: (p) => l.rr[p]?.p99 },
    { name: 'req/resp p99.9 µs', get: (p) => l.rr[p]?.p999 },
    { name: 'connect+req+close p50 µs', get: (p) => l.connect[p]?.p50 },
    { name: 'connect+req+close p99 µs', get: (p) => l.connect[p]?.p99 },
    { name: 'connect+req+close p99.9 µs', get: (p) => l.connect[p]?.p999 },
  ]);
}

export function stormTable(results: Results): string {
  const l = results.latency!;
  const base = l.storm[BASELINE]?.lastAnswerMs.median;
  return table(
    ['path', 'clients at once', 'last answer after, ms', 'vs plain', 'vs Go proxy', 'served', 'refused', 'errors'],
    Object.entries(l.storm).map(([p, s]) => [
      results.paths[p] ?? p,
      String(s.clients),
      `${num(s.lastAnswerMs.median)}${spread(s.lastAnswerMs)}`,
      p === BASELINE ? '' : x(ratio(s.lastAnswerMs.median, base)),
      p === GO_PROXY ? '' : x(ratio(s.lastAnswerMs.median, l.storm[GO_PROXY]?.lastAnswerMs.median)),
      `${s.served}/${s.attempted}`,
      String(s.refused),
      Object.entries(s.errors).map(([k, v]) => `${k}×${v}`).join(' ') || '0',
    ]),
  );
}

export function memoryTable(results: Results): string {
  const d = results.density;
  const rows: string[][] = [];
  const row = (name: string, s: MemSample | undefined) => {
    if (s) rows.push([name, mib(s.rss), mib(s.pss), mib(s.uss), String(s.threads)]);
  };
  if (d) {
    row('idle, live yamux session', d.idle);
    row(`${d.conns} idle connections`, d.withConns);
    row(`all ${d.opened} closed`, d.afterRelease);
    const r = d.perConnRssReps;
    rows.push([
      `per idle connection (median of ${r.n} steps of +${d.conns}; RSS ${kib(r.min)}–${kib(r.max)})`,
      kib(d.perConn.rss),
      kib(d.perConn.pss),
      kib(d.perConn.uss),
      '',
    ]);
  }
  for (const s of results.throughput ?? []) {
    const p = s.peak?.[PROXY];
    if (p) row(`peak during ${s.dir} ×${s.streams} (${s.bytesPerStream / MiB} MiB/stream)`, p);
  }
  return table(['daemon (bin/kata-proxy)', 'RSS', 'PSS', 'USS', 'threads'], rows);
}

export function podsTable(results: Results): string {
  const p = results.pods!;
  const rows: string[][] = [['1 pod, idle', mib(p.onePod.rss), mib(p.onePod.pss), mib(p.onePod.uss), String(p.onePod.threads)]];
  for (const s of p.steps) rows.push([`${s.pods} pods, idle`, mib(s.sample.rss), mib(s.sample.pss), mib(s.sample.uss), String(s.sample.threads)]);
  const r = p.perPodUssReps;
  rows.push([`per extra pod (median of ${r.n} steps of +${p.perStep}; USS ${kib(r.min)}–${kib(r.max)})`, kib(p.perPod.rss), kib(p.perPod.pss), kib(p.perPod.uss), '']);
  const own = results.density?.idle;
  if (own) rows.push(['one daemon per pod (bin/kata-proxy idle, above)', mib(own.rss), mib(own.pss), mib(own.uss), String(own.threads)]);
  return table(['pods in one process (bench/pod-host.ts)', 'RSS', 'PSS', 'USS', 'threads'], rows);
}

export function flagTable(results: Results): string {
  const rows = results.flags ?? [];
  const launcher = rows.find((r) => r.variant === 'launcher');
  return table(
    ['node flags / env', 'idle RSS', 'idle PSS', 'idle USS', 'threads', 'per idle conn', 'peak RSS echo ×64', 'up ×1 MiB/s', 'req/resp p50 µs'],
    rows.map((r) =>
      r.error && r.idle.rss === 0
        ? [r.variant, `failed: ${r.error}`, '', '', '', '', '', '', '']
        : [
            r.variant,
            `${mib(r.idle.rss)}${launcher && r !== launcher ? ` (${signed((r.idle.rss - launcher.idle.rss) / MiB)})` : ''}`,
            mib(r.idle.pss),
            mib(r.idle.uss),
            String(r.idle.threads),
            kib(r.perConnRss),
            mib(r.peak64.rss),
            `${num(r.upMiBps.median)}${launcher && r !== launcher ? ` (${x(ratio(r.upMiBps.median, launcher.upMiBps.median))})` : ''}`,
            `${num(r.rrP50Us.median)}${launcher && r !== launcher ? ` (${x(ratio(r.rrP50Us.median, launcher.rrP50Us.median))})` : ''}`,
          ],
    ),
  );
}

const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(1)}`;

export function targetTable(targets: TargetResult[]): string {
  return table(
    ['target', 'measured', 'limit', ''],
    targets.map((t) => [t.name, `${num(t.value, t.unit === '×' ? 2 : 1)}${t.unit}`, `${t.op === '>=' ? '≥' : '≤'} ${t.limit}${t.unit}`, t.pass ? 'PASS' : 'FAIL']),
  );
}

// ---- figures, targets, regressions -------------------------------------------------------------

export function collectFigures(r: Results): Figure[] {
  const out: Figure[] = [];
  const add = (key: string, value: number | undefined, unit: string, better: 'higher' | 'lower', worst?: number) => {
    if (value === undefined || !Number.isFinite(value)) return;
    out.push({ key, value, unit, better, ...(worst !== undefined && Number.isFinite(worst) ? { worst } : {}) });
  };
  const addSummary = (key: string, s: Summary | undefined, unit: string, better: 'higher' | 'lower') =>
    s && add(key, s.median, unit, better, better === 'higher' ? s.min : s.max);
  for (const s of r.throughput ?? []) {
    const base = s.mibps[BASELINE];
    for (const [p, m] of Object.entries(s.mibps)) {
      addSummary(`throughput.${s.dir}x${s.streams}.${p}.MiBps`, m, 'MiB/s', 'higher');
      if (p !== BASELINE && base) add(`throughput.${s.dir}x${s.streams}.${p}.vsPlain`, ratio(m.median, base.median), '×', 'higher', ratio(m.min, base.max));
    }
    const e = s.mibps.engine;
    const px = s.mibps[PROXY];
    if (e && px) add(`throughput.${s.dir}x${s.streams}.proxy.vsEngine`, ratio(px.median, e.median), '×', 'higher', ratio(px.min, e.max));
    const g = s.mibps[GO_PROXY];
    if (g && px) add(`throughput.${s.dir}x${s.streams}.proxy.vsGoProxy`, ratio(px.median, g.median), '×', 'higher', ratio(px.min, g.max));
    for (const [p, perGiB] of Object.entries(s.cpuSecondsPerGiB ?? {})) {
      if (perGiB.proxy !== undefined) add(`cpu.${s.dir}x${s.streams}.${p}.sPerGiB`, perGiB.proxy, 's/GiB', 'lower');
    }
    const cpuOurs = s.cpuSecondsPerGiB?.[PROXY]?.proxy;
    const cpuGo = s.cpuSecondsPerGiB?.[GO_PROXY]?.proxy;
    add(`cpu.${s.dir}x${s.streams}.proxy.vsGoProxy`, ratio(cpuOurs, cpuGo), '×', 'lower');
  }
  if (r.latency) {
    for (const kind of ['rr', 'connect'] as const) {
      const base = r.latency[kind][BASELINE]?.p50;
      for (const [p, f] of Object.entries(r.latency[kind])) {
        addSummary(`latency.${kind}.${p}.p50us`, f.p50, 'µs', 'lower');
        addSummary(`latency.${kind}.${p}.p99us`, f.p99, 'µs', 'lower');
        if (p !== BASELINE && base) add(`latency.${kind}.${p}.p50vsPlain`, ratio(f.p50.median, base.median), '×', 'lower', ratio(f.p50.max, base.min));
      }
      const ours = r.latency[kind][PROXY];
      const go = r.latency[kind][GO_PROXY];
      if (ours && go) {
        for (const q of ['p50', 'p99'] as const) add(`latency.${kind}.proxy.${q}vsGoProxy`, ratio(ours[q].median, go[q].median), '×', 'lower', ratio(ours[q].max, go[q].min));
      }
    }
    for (const [p, s] of Object.entries(r.latency.storm)) addSummary(`storm.${p}.lastAnswerMs`, s.lastAnswerMs, 'ms', 'lower');
    add('storm.proxy.vsGoProxy', ratio(r.latency.storm[PROXY]?.lastAnswerMs.median, r.latency.storm[GO_PROXY]?.lastAnswerMs.median), '×', 'lower');
  }
  if (r.podStart) {
    for (const [k, s] of Object.entries(r.podStart.ms)) addSummary(`podStart.${k}.ms`, s, 'ms', 'lower');
    for (const [k, s] of Object.entries(r.podStart.cpuMs ?? {})) addSummary(`podStart.${k}.cpuMs`, s, 'ms', 'lower');
    add('podStart.proxy.vsNode', ratio(r.podStart.ms[PROXY]?.median, r.podStart.ms.node?.median), '×', 'lower');
    add('podStart.proxy.cpuVsNode', ratio(r.podStart.cpuMs?.[PROXY]?.median, r.podStart.cpuMs?.node?.median), '×', 'lower');
    add('podStart.proxy.vsGoProxy', ratio(r.podStart.ms[PROXY]?.median, r.podStart.ms[GO_PROXY]?.median), '×', 'lower');
    add('podStart.hosted.vsGoProxy', ratio(r.podStart.ms.hosted?.median, r.podStart.ms[GO_PROXY]?.median), '×', 'lower');
    add('podStart.hosted.cpuVsGoProxy', ratio(r.podStart.cpuMs?.hosted?.median, r.podStart.cpuMs?.[GO_PROXY]?.median), '×', 'lower');
    for (const k of Object.keys(r.podStart.cpuMs ?? {}).filter((k) => k.startsWith('proxy@'))) {
      add(`podStart.${k}.cpuVsNode`, ratio(r.podStart.cpuMs[k]?.median, r.podStart.cpuMs[bareOf(k)]?.median), '×', 'lower');
    }
  }
  if (r.podBurst) {
    for (const [k, s] of Object.entries(r.podBurst.allAnsweredMs)) addSummary(`podBurst.${k}.ms`, s, 'ms', 'lower');
    add('podBurst.hosted.vsGoProxy', ratio(r.podBurst.allAnsweredMs.hosted?.median, r.podBurst.allAnsweredMs[GO_PROXY]?.median), '×', 'lower');
  }
  if (r.density) {
    add('memory.idle.rss', r.density.idle.rss, 'B', 'lower');
    add('memory.idle.uss', r.density.idle.uss, 'B', 'lower');
    addSummary('memory.perConn.rss', r.density.perConnRssReps, 'B', 'lower');
    add('memory.threads.idle', r.density.idle.threads, '', 'lower');
  }
  if (r.pods) add('memory.perPod.uss', r.pods.perPod.uss, 'B', 'lower');
  if (r.floods) out.push(...floodFigures(r.floods));
  if (r.host) out.push(...hostFigures(r.host));
  if (r.neighbours) out.push(...neighboursFigures(r.neighbours));
  if (r.podMemory) out.push(...podMemoryFigures(r.podMemory));
  if (r.reload) out.push(...reloadFigures(r.reload));
  for (const s of r.throughput ?? []) {
    const p = s.peak?.[PROXY];
    if (p) add(`memory.peak.${s.dir}x${s.streams}.rss`, p.rss, 'B', 'lower');
  }
  const peak = r.peak?.[PROXY];
  if (peak) add('memory.threads.peak', peak.threads, '', 'lower');
  return out;
}

export function evaluateTargets(r: Results): TargetResult[] {
  const t: TargetResult[] = [];
  const tp = (dir: string, streams: number) => {
    const s = r.throughput?.find((x) => x.dir === dir && x.streams === streams);
    return s ? ratio(s.mibps[PROXY]?.median, s.mibps[BASELINE]?.median) : NaN;
  };
  for (const streams of [1, 64]) {
    for (const dir of ['up', 'down', 'echo']) {
      const v = tp(dir, streams);
      if (Number.isFinite(v)) {
        t.push({ name: `${dir} ×${streams} through the proxy ≥ 0.5× plain socket`, value: v, op: '>=', limit: 0.5, unit: '×', pass: v >= 0.5 });
      }
    }
  }
  for (const s of r.throughput ?? []) {
    const v = ratio(s.mibps[PROXY]?.median, s.mibps[GO_PROXY]?.median);
    if (Number.isFinite(v)) t.push({ name: `${s.dir} ×${s.streams} ≥ 1.0× the Go proxy`, value: v, op: '>=', limit: 1, unit: '×', pass: v >= 1 });
  }
  for (const s of r.throughput ?? []) {
    const v = ratio(s.cpuSecondsPerGiB?.[PROXY]?.proxy, s.cpuSecondsPerGiB?.[GO_PROXY]?.proxy);
    if (Number.isFinite(v)) t.push({ name: `${s.dir} ×${s.streams} proxy CPU-s per GiB ≤ the Go proxy's`, value: v, op: '<=', limit: 1, unit: '×', pass: v <= 1 });
  }
  if (r.latency) {
    for (const [kind, name] of [['rr', 'req/resp'], ['connect', 'connect+req+close']] as const) {
      for (const q of ['p50', 'p99'] as const) {
        const v = ratio(r.latency[kind][PROXY]?.[q].median, r.latency[kind][GO_PROXY]?.[q].median);
        if (Number.isFinite(v)) t.push({ name: `${name} ${q} ≤ the Go proxy's`, value: v, op: '<=', limit: 1, unit: '×', pass: v <= 1 });
      }
    }
  }
  if (r.podStart) {
    const v = ratio(r.podStart.ms[PROXY]?.median, r.podStart.ms.node?.median);
    if (Number.isFinite(v)) t.push({ name: 'pod start ≤ 1.3× a bare `node -e 0`', value: v, op: '<=', limit: 1.3, unit: '×', pass: v <= 1.3 });
    const c = ratio(r.podStart.cpuMs?.[PROXY]?.median, r.podStart.cpuMs?.node?.median);
    if (Number.isFinite(c)) t.push({ name: 'pod start, CPU time ≤ 1.3× a bare `node -e 0`', value: c, op: '<=', limit: 1.3, unit: '×', pass: c <= 1.3 });
    for (const k of Object.keys(r.podStart.cpuMs ?? {}).filter((k) => k.startsWith('proxy@'))) {
      const v = ratio(r.podStart.cpuMs[k]?.median, r.podStart.cpuMs[bareOf(k)]?.median);
      if (Number.isFinite(v)) t.push({ name: `pod start on Node ${k.slice(6)}, CPU time ≤ 1.3× its bare \`node -e 0\``, value: v, op: '<=', limit: 1.3, unit: '×', pass: v <= 1.3 });
    }
    for (const [what, by] of [['wall', r.podStart.ms], ['CPU (handle + host)', r.podStart.cpuMs]] as const) {
      const v = ratio(by?.hosted?.median, by?.[GO_PROXY]?.median);
      if (Number.isFinite(v)) t.push({ name: `pod start through a per-pod handle, ${what} ≤ the Go proxy's`, value: v, op: '<=', limit: 1, unit: '×', pass: v <= 1 });
    }
  }
  if (r.podBurst) {
    const v = ratio(r.podBurst.allAnsweredMs.hosted?.median, r.podBurst.allAnsweredMs[GO_PROXY]?.median);
    if (Number.isFinite(v)) t.push({ name: `${r.podBurst.pods} pods at once through handles, until all answer ≤ ${r.podBurst.pods} Go proxies`, value: v, op: '<=', limit: 1, unit: '×', pass: v <= 1 });
  }
  if (r.latency) {
    const v = ratio(r.latency.rr[PROXY]?.p50.median, r.latency.rr[BASELINE]?.p50.median);
    t.push({ name: 'req/resp p50 ≤ 2× plain socket', value: v, op: '<=', limit: 2, unit: '×', pass: v <= 2 });
    const storm = r.latency.storm[PROXY];
    if (storm) {
      const ok = storm.served === storm.attempted && storm.refused === 0;
      t.push({ name: `storm: all ${storm.clients} served, none refused`, value: storm.attempted - storm.served, op: '<=', limit: 0, unit: ' failed', pass: ok });
    }
  }
  if (r.density) {
    const kb = r.density.perConn.rss / 1000;
    t.push({ name: 'per idle connection (RSS) ≤ 8 KB', value: kb, op: '<=', limit: 8, unit: ' KB', pass: kb <= 8 });
    const threads = Math.max(r.density.idle.threads, r.density.withConns.threads, r.peak?.[PROXY]?.threads ?? 0);
    t.push({ name: 'threads (idle, 1000 conns, peak) ≤ 6', value: threads, op: '<=', limit: 6, unit: '', pass: threads <= 6 });
  }
  if (r.floods) t.push(...floodTargets(r.floods));
  if (r.host) t.push(...hostTargets(r.host));
  if (r.neighbours) t.push(...neighboursTargets(r.neighbours));
  if (r.podMemory) t.push(...podMemoryTargets(r.podMemory));
  if (r.reload) t.push(...reloadTargets(r.reload));
  return t;
}

/**
 * Figures worse than the previous run's by more than `threshold` (0.1 = 10 %). Each is marked
 * "beyond spread" when it is also worse than the previous run's worst repetition: on a shared,
 * noisy machine only those are likely to be real.
 */
export function compare(previous: Figure[], current: Figure[], threshold = 0.1): Regression[] {
  const prev = new Map(previous.map((f) => [f.key, f]));
  const out: Regression[] = [];
  for (const f of current) {
    const p = prev.get(f.key);
    if (!p || !Number.isFinite(p.value) || p.value === 0) continue;
    const change = (f.value - p.value) / Math.abs(p.value);
    const worse = f.better === 'higher' ? change < -threshold : change > threshold;
    if (!worse) continue;
    const beyondSpread = p.worst === undefined ? null : f.better === 'higher' ? f.value < p.worst : f.value > p.worst;
    out.push({ key: f.key, previous: p.value, current: f.value, change, unit: f.unit, beyondSpread });
  }
  return out;
}

/** Ratios and memory/thread figures do not depend on how fast the shared machine is today. */
export function machineIndependent(g: Regression): boolean {
  return g.unit === '×' || g.unit === 'B' || g.unit === '';
}

export function regressionTable(regs: Regression[]): string {
  const fmt = (v: number, unit: string) => (unit === 'B' ? (v < MiB ? kib(v) : mib(v)) : `${num(v, unit === '×' ? 2 : 0)} ${unit}`);
  const sorted = [...regs.filter(machineIndependent), ...regs.filter((g) => !machineIndependent(g))];
  return table(
    ['figure', 'kind', 'previous', 'now', 'change', "beyond the previous run's spread"],
    sorted.map((g) => [
      g.key,
      machineIndependent(g) ? (g.unit === '×' ? 'ratio' : 'memory') : 'absolute',
      fmt(g.previous, g.unit),
      fmt(g.current, g.unit),
      `${g.change >= 0 ? '+' : ''}${(g.change * 100).toFixed(0)} %`,
      g.beyondSpread === null ? '(no spread)' : g.beyondSpread ? 'YES' : 'no (noise?)',
    ]),
  );
}

/** The full human-readable report. */
export function render(r: Results, previousFound: boolean): string {
  const parts: string[] = [];
  const m = r.machine;
  parts.push(`kata-proxy bench — ${r.date}\n${m.nproc} × ${m.cpu}, ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}, ${m.go}`);
  parts.push(`Paths: ${Object.entries(r.paths).map(([k, v]) => `${k} = ${v}`).join('; ')}`);
  if (r.throughput) {
    parts.push(`## Throughput, MiB/s: median [min–max] (ratio to the plain socket)\n\n${throughputTable(r)}`);
    parts.push(
      `## The proxy hop alone (proxy → Go ÷ engine → Go; relay ÷ plain is a bare Node hop without yamux), ours against the Go proxy (MiB/s: higher is better; µs and ms: lower is better), and CPU use per process (% of one core during the timed runs; ${r.machine.nproc} cores in all)\n\n${hopTable(r)}`,
    );
  }
  if (r.throughput?.some((s) => s.cpuSecondsPerGiB?.[GO_PROXY])) {
    parts.push(
      `## Proxy CPU per GiB moved (CPU-seconds of the proxy process, user + system, over the timed runs ÷ GiB of payload; echo counts each byte once though it crosses twice)\n\n${cpuPerGiBTable(r)}`,
    );
  }
  if (r.podStart) {
    const lost = Object.entries(r.podStart.unanswered).filter(([, n]) => n > 0);
    const errors =
      (r.podStart.errors.length > 0 ? `\n\n${r.podStart.errors.length} runs failed: ${r.podStart.errors.slice(0, 3).join('; ')}` : '') +
      (lost.length > 0
        ? `\n\n! first connection accepted but never answered (the client connected again after 2 s): ${lost.map(([k, n]) => `${k} ${n} runs`).join(', ')}`
        : '');
    parts.push(
      `## Pod start: spawn to the first answered request through the listen socket (guest already up), median of ${r.podStart.runs} interleaved runs [min–max]; ` +
        `CPU ms: what the process used until then, all threads (bare node: spawn to exit; its CPU until its one line ran)\n\n${podStartTable(r)}` +
        `${r.podStart.daemonEntry ? `\n\nbin/kata-proxy started from ${r.podStart.daemonEntry}.` : ''}${errors}` +
        (r.podStart.companionCpuMs?.hosted
          ? '\n\nThrough a per-pod handle the host was already running (`kata-proxy host`, as under systemd); CPU counts the handle and what the host spent between the spawn and the answer.'
          : ''),
    );
  }
  if (r.podBurst) {
    const errors = r.podBurst.errors.length > 0 ? `\n\n${r.podBurst.errors.length} runs failed: ${r.podBurst.errors.slice(0, 3).join('; ')}` : '';
    parts.push(`## Pods started at once: spawn of all to the last first answer, median of ${r.podBurst.reps} runs [min–max]\n\n${podBurstTable(r)}${errors}`);
  }
  if (r.latency) {
    parts.push(`## Latency, µs: median of the repetitions' percentiles [min–max] (ratio to the plain socket)\n\n${latencyTable(r)}`);
    parts.push(`## Connection storm\n\n${stormTable(r)}`);
  }
  if (r.floods) parts.push(floodsSection(r.floods));
  if (r.host) parts.push(hostSection(r.host));
  if (r.podMemory) parts.push(podMemorySection(r.podMemory));
  if (r.neighbours) parts.push(neighboursSection(r.neighbours));
  if (r.reload) parts.push(reloadSection(r.reload));
  if (r.density || r.peak) {
    const note = r.density
      ? `\n\nRSS counts every page the daemon touches; PSS divides shared pages (the node binary) among the ${r.density.nodeProcesses} node processes running when it was sampled; USS is the daemon's private memory (what one more pod adds at least).`
      : '';
    parts.push(`## Memory and threads\n\n${memoryTable(r)}${note}`);
  }
  if (r.pods) {
    const errors = r.pods.errors.length > 0 ? `\n\n${r.pods.errors.length} pods failed their exchange: ${r.pods.errors.slice(0, 3).join('; ')}` : '';
    parts.push(
      `## Pods in one process\n\n${podsTable(r)}\n\nEach pod: its own listen socket, guest channel, yamux session, 1 s heartbeat and child logger; one exchange through every pod before sampling.${errors}`,
    );
  }
  if (r.flags) {
    parts.push(
      `## Node flags (daemons side by side, same workload)\n\n${flagTable(r)}\n\nIdle figures are single samples; per-connection figures move ±1–2 KiB between runs; the speed columns are 3 repetitions and move ±20 % between runs here.`,
    );
  }
  if (r.targets.length > 0) parts.push(`## Targets\n\n${targetTable(r.targets)}`);
  if (r.regressions) {
    parts.push(
      r.regressions.length > 0
        ? `## Regressions against the previous bench/results.json (> 10 % worse)\n\n` +
            `${r.regressions.filter((g) => machineIndependent(g) && g.beyondSpread !== false).length} ratio/memory figures regressed beyond the previous run's spread ` +
            `(absolute speeds also move with the shared machine's load: compare them with the plain socket's own change)\n\n${regressionTable(r.regressions)}`
        : '## Regressions against the previous bench/results.json: none (no figure > 10 % worse)',
    );
  } else if (!previousFound) {
    parts.push('(no previous bench/results.json to compare with)');
  }
  return parts.join('\n\n');
}
