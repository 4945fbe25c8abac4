// Memory and threads of the daemon: idle with a live session, with 1,000 idle connections (bytes
// per connection), and what each Node flag buys (several daemons started side by side with
// different flags, each measured the same way, with a short throughput/latency check so a flag
// that saves memory but costs speed shows it).
import { readdirSync, readlinkSync } from 'node:fs';
import type { HoldResult, LatencyResult, ThroughputResult } from './protocol.js';
import { startDaemon, type Child, type DaemonPaths, type LoadClient, type NodeVariant } from './peers.js';
import { PeakSampler, settledSample, sleep, threadNames, type MemSample } from './proc.js';
import { maxSample } from './throughput.js';
import { median, percentiles, summarize, type Summary } from './stats.js';

export interface DensityFigures {
  idle: MemSample;
  withConns: MemSample;
  afterRelease: MemSample;
  /** Connections added per step. */
  conns: number;
  /** Connections open at the end (all steps). */
  opened: number;
  holdErrors: Record<string, number>;
  /** Growth per added idle connection, bytes: median of the steps. */
  perConn: { rss: number; pss: number; uss: number };
  /** Per-connection RSS growth of each step of `conns` more connections, bytes. */
  perConnRssReps: Summary;
  threadNames: string[];
  /** Processes running the same node binary when sampled (they share its pages, lowering PSS). */
  nodeProcesses: number;
}

/** How many processes run the same executable as this one (the node binary). */
export function countNodeProcesses(): number {
  let n = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readlinkSync(`/proc/${pid}/exe`) === process.execPath) n++;
    } catch {
      // gone or not ours
    }
  }
  return n;
}

/**
 * Idle figures; then `steps` times `conns` more idle connections (one echo exchange each, then
 * silence), sampled after each step, all kept open: each step's growth / conns is one figure for
 * the memory of an idle connection (fresh growth every time: nothing freed is reused); the
 * median is reported. Then everything is released and sampled once more.
 */
export async function measureDensity(daemon: Child, listen: string, client: LoadClient, conns: number, steps = 3): Promise<DensityFigures> {
  const idle = (await settledSample(daemon.pid, { minMs: 1500, maxMs: 4000 }))!;
  const nodeProcesses = countNodeProcesses();
  let before = idle;
  let withConns = idle;
  let names: string[] = [];
  let opened = 0;
  const holdErrors: Record<string, number> = {};
  const per = { rss: [] as number[], pss: [] as number[], uss: [] as number[] };
  for (let step = 0; step < steps; step++) {
    const hold = await client.run<HoldResult>({ type: 'hold', target: { kind: 'socket', path: listen }, count: conns, batch: 100 });
    for (const [k, v] of Object.entries(hold.errors)) holdErrors[k] = (holdErrors[k] ?? 0) + v;
    const s = (await settledSample(daemon.pid, { minMs: 1000, maxMs: 3000 }))!;
    const added = hold.open - opened;
    opened = hold.open;
    for (const k of ['rss', 'pss', 'uss'] as const) per[k].push((s[k] - before[k]) / Math.max(1, added));
    if (step === 0) {
      withConns = s;
      names = threadNames(daemon.pid);
    }
    before = s;
  }
  await client.run({ type: 'release' });
  const afterRelease = (await settledSample(daemon.pid, { minMs: 800, maxMs: 2500 }))!;
  return {
    idle,
    withConns,
    afterRelease,
    conns,
    opened,
    holdErrors,
    perConn: { rss: median(per.rss), pss: median(per.pss), uss: median(per.uss) },
    perConnRssReps: summarize(per.rss),
    threadNames: names,
    nodeProcesses,
  };
}

// ---- the flag table ----------------------------------------------------------------------------

export interface FlagRow {
  variant: string;
  nodeFlags: string[];
  env: Record<string, string>;
  idle: MemSample;
  withConns: MemSample;
  perConnRss: number;
  /** 1-stream upload through this daemon, MiB/s. */
  upMiBps: Summary;
  /** 64-byte request/response p50, µs (median of the repetitions). */
  rrP50Us: Summary;
  /** Peak during echo ×64 transfers. */
  peak64: MemSample;
  error?: string;
}

export interface FlagOptions {
  conns: number;
  upBytes: number;
  /** Bytes per stream of the echo ×64 run whose peak memory is reported. */
  echo64Bytes: number;
  reps: number;
  rrCount: number;
}

export async function measureFlags(
  variants: NodeVariant[],
  mux: string,
  dir: (name: string) => string,
  client: LoadClient,
  o: FlagOptions,
  log: (line: string) => void,
): Promise<FlagRow[]> {
  // All variants run side by side (idle daemons cost no CPU), so the speed checks can be
  // interleaved and every row sees the same machine.
  const live: { v: NodeVariant; d: Child; paths: DaemonPaths }[] = [];
  const rows: FlagRow[] = [];
  const failed: FlagRow[] = [];
  for (const [i, v] of variants.entries()) {
    const paths = { listen: dir(`flags-${i}.sock`), mux, sandbox: `bench-flags-${i}` };
    try {
      live.push({ v, d: await startDaemon(paths, v), paths });
    } catch (err) {
      const nan = summarize([]);
      const zero = { rss: 0, pss: 0, uss: 0, anon: 0, threads: 0 };
      failed.push({ variant: v.name, nodeFlags: v.nodeFlags, env: v.env, idle: zero, withConns: zero, perConnRss: NaN, upMiBps: nan, rrP50Us: nan, peak64: zero, error: (err as Error).message.split('\n')[0] });
    }
  }
  try {
    await sleep(2000);
    const idle = new Map<Child, MemSample>();
    for (const { d } of live) idle.set(d, (await settledSample(d.pid, { minMs: 0, maxMs: 2000 }))!);
    // Two steps of o.conns connections each: per connection = mean growth per added connection.
    const withConns = new Map<Child, { s: MemSample; perConn: number }>();
    for (const { d, paths } of live) {
      const target = { kind: 'socket' as const, path: paths.listen };
      await client.run<HoldResult>({ type: 'hold', target, count: o.conns, batch: 100 });
      const s1 = (await settledSample(d.pid, { minMs: 800, maxMs: 2500 }))!;
      const h2 = await client.run<HoldResult>({ type: 'hold', target, count: o.conns, batch: 100 });
      const s2 = (await settledSample(d.pid, { minMs: 800, maxMs: 2500 }))!;
      withConns.set(d, { s: s1, perConn: (s2.rss - idle.get(d)!.rss) / Math.max(1, h2.open) });
      await client.run({ type: 'release' });
    }
    const up = new Map<Child, number[]>(live.map(({ d }) => [d, []]));
    const peaks = new Map<Child, MemSample>();
    const rr = new Map<Child, number[]>(live.map(({ d }) => [d, []]));
    for (let round = 0; round <= o.reps; round++) {
      for (let i = 0; i < live.length; i++) {
        const { d, paths } = live[(i + round) % live.length]!;
        const target = { kind: 'socket' as const, path: paths.listen };
        const t = await client.run<ThroughputResult>({ type: 'throughput', target, dir: 'up', streams: 1, bytesPerStream: o.upBytes, verify: round === 0 });
        const l = await client.run<LatencyResult>({ type: 'rr', target, count: o.rrCount, warmup: 100, size: 64 });
        if (round === 0) continue; // warm-up
        const sampler = new PeakSampler(d.pid, 50);
        await client.run<ThroughputResult>({ type: 'throughput', target, dir: 'echo', streams: 64, bytesPerStream: o.echo64Bytes, verify: false });
        peaks.set(d, maxSample(peaks.get(d), sampler.stop()));
        if (t.errors.length === 0) up.get(d)!.push(t.bytes / (1 << 20) / t.seconds);
        if (l.samplesUs.length > 0) rr.get(d)!.push(percentiles(l.samplesUs).p50);
      }
    }
    for (const { v, d } of live) {
      const i0 = idle.get(d)!;
      const w = withConns.get(d)!;
      rows.push({
        variant: v.name,
        nodeFlags: v.nodeFlags,
        env: v.env,
        idle: i0,
        withConns: w.s,
        perConnRss: w.perConn,
        upMiBps: summarize(up.get(d)!),
        rrP50Us: summarize(rr.get(d)!),
        peak64: peaks.get(d) ?? { rss: 0, pss: 0, uss: 0, anon: 0, threads: 0 },
        ...(d.alive ? {} : { error: `exited: ${d.stderrTail.slice(-2).join(' ')}` }),
      });
      log(
        `  ${v.name.padEnd(34)} idle RSS ${(i0.rss / 1048576).toFixed(1)} MiB, PSS ${(i0.pss / 1048576).toFixed(1)}, threads ${i0.threads}, ` +
          `${(w.perConn / 1024).toFixed(1)} KiB/conn, peak ${((peaks.get(d)?.rss ?? 0) / 1048576).toFixed(0)} MiB, up ${summarize(up.get(d)!).median.toFixed(0)} MiB/s, rr p50 ${summarize(rr.get(d)!).median.toFixed(0)} µs`,
      );
    }
  } finally {
    await Promise.all(live.map(({ d }) => d.stop()));
  }
  for (const f of failed) log(`  ${f.variant}: failed to start: ${f.error}`);
  return [...rows, ...failed];
}
