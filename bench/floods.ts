// Floods: 64-byte request/response through the proxy while the guest console floods the log and
// the daemon's stderr is read slowly (256 KiB/s, a lagging journald), against the same requests
// without a flood in the same run; the daemon's RSS growth over idle; the console lines dropped.
import { spawn, type ChildProcess } from 'node:child_process';
import { FloodConsole, SlowReader } from '../test/helpers/console-flood.js';
import { daemonEnv, LAUNCHER, probe, REPO_ROOT, runtimeArgv, type LoadClient } from './peers.js';
import { PeakSampler, settledSample, sleep } from './proc.js';
import type { LatencyResult, Target } from './protocol.js';
import { table, type Figure, type TargetResult } from './report-parts.js';
import { percentiles, ratio, summarize, type Summary } from './stats.js';

const MiB = 1 << 20;
const SINK_BYTES_PER_SECOND = 256 * 1024;
const RSS_BUDGET = 32 * MiB;
/**
 * 200 MiB/s of console output. Unpaced, the flooding process and the daemon each take a whole
 * core of the 2-core machines this runs on, and the figure measures the CPU scheduler.
 */
const FLOOD_BYTES_PER_SECOND = 200 * MiB;
const P99_LIMIT = 2;

export interface FloodOptions {
  reps: number;
  /** Round trips per measurement (with and without a flood). */
  rrCount: number;
}

export interface FloodFigures {
  name: string;
  /** Console line length (LF included). */
  lineBytes: number;
  /** Round-trip percentiles, µs: median over repetitions [min–max]. */
  quiet: { p50: Summary; p99: Summary };
  flooded: { p50: Summary; p99: Summary };
  /** Console bytes the daemon took per second while the requests ran, MiB/s. */
  floodMiBps: Summary;
  /** Peak RSS during the floods minus idle RSS, bytes (the worst repetition). */
  rssGrowth: number;
  errors: string[];
}

export interface FloodsResult {
  sinkBytesPerSecond: number;
  idleRss: number;
  options: FloodOptions;
  scenarios: FloodFigures[];
  /** Console lines the daemon reported dropped, and lines it wrote, over the whole section. */
  droppedLines: number;
  writtenLines: number;
}

const SCENARIOS = [
  { name: 'console flood, 200-byte lines', lineBytes: 200 },
  { name: 'console flood, 20 MB lines', lineBytes: 20 * MiB },
];

export async function measureFloods(
  client: LoadClient,
  guestMuxSocket: string,
  sock: (name: string) => string,
  o: FloodOptions,
  log: (line: string) => void,
): Promise<FloodsResult> {
  const paths = { listen: sock('proxy-flood.sock'), mux: guestMuxSocket, sandbox: 'bench-flood' };
  const guestConsole = await FloodConsole.listen(sock('flood-console.sock'));
  const argv = runtimeArgv(paths);
  argv[argv.indexOf('-log') + 1] = 'info'; // relayed console lines are info records
  argv.push('-agent-logs-socket', sock('flood-console.sock'));
  const proc = spawn(LAUNCHER, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: daemonEnv(), cwd: REPO_ROOT });
  const stderr = new SlowReader(proc.stderr!, SINK_BYTES_PER_SECOND, (line) => line.includes('msg="log records dropped"'));
  try {
    await untilServing(proc, paths.listen);
    await guestConsole.client;
    const target: Target = { kind: 'socket', path: paths.listen };
    const rr = async () => {
      const r = await client.run<LatencyResult>({ type: 'rr', target, count: o.rrCount, warmup: Math.max(20, o.rrCount / 10), size: 64 });
      return { ...percentiles(r.samplesUs), errors: r.errors };
    };
    await rr();
    const idleRss = (await settledSample(proc.pid!))!.rss;
    const scenarios: FloodFigures[] = [];
    for (const s of SCENARIOS) {
      const acc = { qp50: [] as number[], qp99: [] as number[], fp50: [] as number[], fp99: [] as number[], mibps: [] as number[], peak: 0, errors: [] as string[] };
      for (let rep = 0; rep < o.reps; rep++) {
        const quiet = await rr();
        acc.qp50.push(quiet.p50);
        acc.qp99.push(quiet.p99);
        const sampler = new PeakSampler(proc.pid!, 20);
        let done = false;
        const flood = guestConsole.flood(Number.MAX_SAFE_INTEGER, s.lineBytes, { until: () => done, bytesPerSecond: FLOOD_BYTES_PER_SECOND });
        await sleep(50); // the flood is under way (and the log backed up) before the first request
        const t0 = performance.now();
        const flooded = await rr().finally(() => (done = true));
        const sent = await flood;
        acc.mibps.push(sent / MiB / ((performance.now() - t0 + 50) / 1000));
        acc.peak = Math.max(acc.peak, sampler.stop().rss);
        acc.fp50.push(flooded.p50);
        acc.fp99.push(flooded.p99);
        acc.errors.push(...quiet.errors, ...flooded.errors);
      }
      const f: FloodFigures = {
        name: s.name,
        lineBytes: s.lineBytes,
        quiet: { p50: summarize(acc.qp50), p99: summarize(acc.qp99) },
        flooded: { p50: summarize(acc.fp50), p99: summarize(acc.fp99) },
        floodMiBps: summarize(acc.mibps),
        rssGrowth: acc.peak - idleRss,
        errors: acc.errors,
      };
      scenarios.push(f);
      log(
        `  ${s.name}: p50/p99 µs quiet ${f.quiet.p50.median.toFixed(0)}/${f.quiet.p99.median.toFixed(0)}, flooded ${f.flooded.p50.median.toFixed(0)}/${f.flooded.p99.median.toFixed(0)} ` +
          `(p99 ${ratio(f.flooded.p99.median, f.quiet.p99.median).toFixed(2)}×); console ${f.floodMiBps.median.toFixed(0)} MiB/s; RSS +${(f.rssGrowth / MiB).toFixed(1)} MiB over ${(idleRss / MiB).toFixed(1)} MiB idle`,
      );
    }
    proc.kill('SIGTERM');
    await stderr.finish();
    const droppedLines = stderr.kept.reduce((n, l) => n + Number(/agent-lines=(\d+)/.exec(l)?.[1] ?? 0), 0);
    return { sinkBytesPerSecond: SINK_BYTES_PER_SECOND, idleRss, options: o, scenarios, droppedLines, writtenLines: stderr.lines };
  } finally {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await guestConsole.close();
  }
}

async function untilServing(proc: ChildProcess, listen: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await probe(listen))) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error('kata-proxy (floods) did not start serving');
    await sleep(25);
  }
}

// ---- report hooks ----------------------------------------------------------------------------

const p99Ratio = (f: FloodFigures) => ratio(f.flooded.p99.median, f.quiet.p99.median);

export function floodsSection(r: FloodsResult): string {
  const us = (s: Summary) => `${s.median.toFixed(0)}${s.n > 1 ? ` [${s.min.toFixed(0)}–${s.max.toFixed(0)}]` : ''}`;
  const rows = r.scenarios.map((f) => [
    f.name,
    us(f.quiet.p50),
    us(f.quiet.p99),
    us(f.flooded.p50),
    us(f.flooded.p99),
    `${p99Ratio(f).toFixed(2)}×`,
    f.floodMiBps.median.toFixed(0),
    `+${(f.rssGrowth / MiB).toFixed(1)} MiB`,
  ]);
  const headers = ['', 'p50 quiet', 'p99 quiet', 'p50 flooded', 'p99 flooded', 'p99 ratio', 'console MiB/s', 'RSS over idle'];
  const errors = r.scenarios.flatMap((f) => f.errors);
  return (
    `## Floods: 64-byte req/resp, µs, through the proxy (→ Go) while the guest console floods and stderr is read at ${r.sinkBytesPerSecond / 1024} KiB/s; ` +
    `${r.options.reps} × ${r.options.rrCount} round trips each, median [min–max]\n\n${table(headers, rows)}\n\n` +
    `Idle RSS ${(r.idleRss / MiB).toFixed(1)} MiB; ${r.droppedLines} console lines dropped (reported by the daemon), ${r.writtenLines} lines reached stderr.` +
    (errors.length > 0 ? `\n\n! ${errors.length} errors: ${errors.slice(0, 3).join('; ')}` : '')
  );
}

export function floodFigures(r: FloodsResult): Figure[] {
  return r.scenarios.flatMap((f, i) => {
    const key = `floods.${i === 0 ? 'lines' : 'longLine'}`;
    return [
      { key: `${key}.p99vsQuiet`, value: p99Ratio(f), unit: '×', better: 'lower' as const },
      { key: `${key}.rssGrowth`, value: f.rssGrowth, unit: 'B', better: 'lower' as const },
    ].filter((g) => Number.isFinite(g.value));
  });
}

export function floodTargets(r: FloodsResult): TargetResult[] {
  return r.scenarios.flatMap((f) => {
    const v = p99Ratio(f);
    const grow = f.rssGrowth / MiB;
    return [
      { name: `${f.name}: req/resp p99 ≤ ${P99_LIMIT}× without`, value: v, op: '<=' as const, limit: P99_LIMIT, unit: '×', pass: v <= P99_LIMIT },
      { name: `${f.name}: RSS ≤ idle + ${RSS_BUDGET / MiB} MiB`, value: grow, op: '<=' as const, limit: RSS_BUDGET / MiB, unit: ' MiB', pass: grow <= RSS_BUDGET / MiB },
    ];
  });
}
