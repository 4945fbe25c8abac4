// Live reload of host mode (POST /upgrade, as `systemctl reload` does): the whole reload as the
// running host reports it, the pause a pod's clients see (64-byte round trips timed across it),
// and the peak memory of both processes meanwhile. Guests are the simulated guest in one other
// process; connections are held by this process (each after one echo exchange).
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { controlRequest } from '../src/host/control-client.js';
import { Child, daemonEnv, LAUNCHER, startNodeChild } from './peers.js';
import { PeakSampler, sleep, type MemSample } from './proc.js';
import { table, type Figure, type TargetResult } from './report-parts.js';
import { percentiles } from './stats.js';

const MiB = 1 << 20;
const P99_LIMIT_MS = 25;
const LIMITS_MS: Record<number, number> = { 100: 1000, 1000: 10_000 };

export interface ReloadRun {
  pods: number;
  connections: number;
  /** The running host's own count, from the start of the successor to its READY. */
  reloadMs: number;
  /** Of reloadMs: the successor starting (until it accepted the formats), then the pods moving. */
  startMs: number;
  podsMs: number;
  /** Wall clock of POST /upgrade as a client sees it. */
  requestMs: number;
  moved: number;
  stayed: number;
  /** How long each pod was stopped, as the running host measured it (ms). */
  pausedMs: { p50: number; p99: number; max: number };
  /** 64-byte round trips of the timed clients while the reload ran. */
  rtt: { samples: number; p50Ms: number; p99Ms: number; maxMs: number };
  /** The same in the half second before it (what the machine's load alone costs them). */
  rttBefore: { samples: number; p99Ms: number };
  oldPeak: MemSample;
  newPeak: MemSample;
}

export interface ReloadFigures {
  runs: ReloadRun[];
  errors: string[];
}

/** A client doing 64-byte echo round trips back to back, timing each. */
class Pinger {
  readonly times: { at: number; ms: number }[] = [];
  private readonly socket: net.Socket;
  private stopped = false;
  private sentAt = 0;
  private got = 0;

  constructor(path: string, errors: string[]) {
    this.socket = net.connect(path);
    this.socket.on('error', (err) => errors.push(`pinger: ${err.message}`));
    this.socket.on('end', () => !this.stopped && errors.push('pinger: EOF'));
    this.socket.on('data', (d: Buffer) => {
      this.got += d.length;
      if (this.got < 64) return;
      this.got -= 64;
      const now = performance.now();
      this.times.push({ at: now, ms: now - this.sentAt });
      this.send();
    });
    this.socket.once('connect', () => {
      this.socket.write('echo\n');
      this.send();
    });
  }

  private send(): void {
    if (this.stopped) return;
    this.sentAt = performance.now();
    this.socket.write(Buffer.alloc(64, 0x61));
  }

  stop(): void {
    this.stopped = true;
    this.socket.end();
  }
}

/** Opens `n` connections to `path`, each after one echo exchange; they stay open until closed. */
async function holdConnections(path: string, n: number, errors: string[]): Promise<net.Socket[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect(path);
          s.on('error', (err) => errors.push(`held: ${err.message}`));
          s.once('data', () => resolve(s));
          s.once('connect', () => s.write('echo\nx'));
        }),
    ),
  );
}

async function oneRun(dir: string, pods: number, connections: number, errors: string[], log: (l: string) => void): Promise<ReloadRun> {
  mkdirSync(dir, { recursive: true });
  const mux = Array.from({ length: pods }, (_, i) => join(dir, `g${i}.sock`));
  const guests = await startNodeChild('reload guests', 'sim-guest.js', mux);
  const control = join(dir, 'host.sock');
  const argv = ['host', '-control-socket', control, '-state-file', join(dir, 'pods.json'), '-log', 'warn'];
  const host = new Child('host', spawn(LAUNCHER, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: daemonEnv() }));
  const pids = [host.pid];
  const held: net.Socket[] = [];
  const pingers: Pinger[] = [];
  try {
    for (let t = Date.now(); !(await controlRequest(control, 'GET', '/pods', undefined, 2000).then((r) => r.status === 200, () => false)); ) {
      if (Date.now() - t > 20_000) throw new Error('host: no control socket');
      await sleep(5);
    }
    for (let i = 0; i < pods; i += 50) {
      await Promise.all(
        mux.slice(i, i + 50).map(async (m, k) => {
          const id = `p${i + k}`;
          const r = await controlRequest(control, 'PUT', `/pods/${id}?wait=serving`, { listenSocket: join(dir, `${id}.sock`), muxSocket: m }, 30_000);
          if (r.status !== 201) throw new Error(`PUT ${id}: ${r.status}`);
        }),
      );
    }
    for (let i = 0; i < pods; i += 50) {
      const batch = await Promise.all(Array.from({ length: Math.min(50, pods - i) }, (_, k) => holdConnections(join(dir, `p${i + k}.sock`), connections, errors)));
      held.push(...batch.flat());
    }
    // Round trips on 10 pods spread over the table (their handover comes early, middle and late).
    for (let k = 0; k < 10; k++) pingers.push(new Pinger(join(dir, `p${Math.floor((k * pods) / 10)}.sock`), errors));
    await sleep(500);
    const oldPeak = new PeakSampler(host.pid, 20);
    let newPeak: PeakSampler | null = null;
    const watchNew = setInterval(() => {
      // The successor is the host's only child: sample it as soon as it exists.
      const child = childOf(host.pid);
      if (child && !newPeak) newPeak = new PeakSampler(child, 20);
    }, 5);
    const t0 = performance.now();
    const answer = await controlRequest(control, 'POST', '/upgrade', undefined, 120_000);
    const t1 = performance.now();
    clearInterval(watchNew);
    if (answer.status !== 200) throw new Error(`reload: ${answer.status} ${JSON.stringify(answer.body)}`);
    const report = answer.body as { pid: number; ms: number; startMs: number; podsMs: number; moved: number; stayed: unknown[]; pausedMs: ReloadRun['pausedMs'] };
    pids.push(report.pid);
    newPeak ??= new PeakSampler(report.pid, 20);
    await sleep(300);
    const oldMem = oldPeak.stop();
    const newMem = (newPeak as PeakSampler).stop();
    const during = pingers.flatMap((p) => p.times.filter((x) => x.at >= t0 && x.at <= t1 + 100).map((x) => x.ms));
    const pc = percentiles(during.length > 0 ? during : [NaN]);
    const before = pingers.flatMap((p) => p.times.filter((x) => x.at >= t0 - 500 && x.at < t0).map((x) => x.ms));
    const run: ReloadRun = {
      pods,
      connections,
      reloadMs: report.ms,
      startMs: report.startMs,
      podsMs: report.podsMs,
      requestMs: t1 - t0,
      moved: report.moved,
      stayed: report.stayed.length,
      pausedMs: report.pausedMs,
      rtt: { samples: during.length, p50Ms: pc.p50, p99Ms: pc.p99, maxMs: Math.max(...during) },
      rttBefore: { samples: before.length, p99Ms: percentiles(before.length > 0 ? before : [NaN]).p99 },
      oldPeak: oldMem,
      newPeak: newMem,
    };
    log(
      `  ${pods} pods × ${connections} connections: reload ${run.reloadMs} ms (start ${run.startMs}, pods ${run.podsMs}; moved ${run.moved}, stayed ${run.stayed}); ` +
        `round trips during it p50 ${run.rtt.p50Ms.toFixed(2)} ms p99 ${run.rtt.p99Ms.toFixed(2)} ms max ${run.rtt.maxMs.toFixed(1)} ms ` +
        `(p99 ${run.rttBefore.p99Ms.toFixed(2)} ms before it); ` +
        `peak RSS old ${(oldMem.rss / MiB).toFixed(0)} MiB, new ${(newMem.rss / MiB).toFixed(0)} MiB`,
    );
    return run;
  } finally {
    for (const p of pingers) p.stop();
    for (const s of held) s.destroy();
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
    }
    await guests.stop();
  }
}

function childOf(pid: number): number | null {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return text ? Number(text.split(/\s+/)[0]) : null;
  } catch {
    return null;
  }
}

export async function measureReload(o: { dir: string; quick: boolean }, log: (line: string) => void): Promise<ReloadFigures> {
  const errors: string[] = [];
  const sizes: [number, number][] = o.quick ? [[20, 10], [100, 2]] : [[100, 10], [1000, 2]];
  const runs: ReloadRun[] = [];
  for (const [pods, connections] of sizes) {
    try {
      runs.push(await oneRun(join(o.dir, `r${pods}`), pods, connections, errors, log));
    } catch (err) {
      errors.push((err as Error).message);
      log(`  ! ${pods} pods: ${(err as Error).message}`);
    }
  }
  return { runs, errors };
}

// ---- report hooks --------------------------------------------------------------------------------

export function reloadSection(r: ReloadFigures): string {
  const mib = (b: number) => (b / MiB).toFixed(1);
  const rows = r.runs.map((x) => [
    `${x.pods} pods × ${x.connections} connections`,
    `${x.reloadMs} (${x.startMs} + ${x.podsMs})`,
    `${x.moved}/${x.pods}`,
    `${x.pausedMs.p50} / ${x.pausedMs.p99} / ${x.pausedMs.max}`,
    x.rtt.p99Ms.toFixed(2),
    x.rtt.maxMs.toFixed(1),
    x.rttBefore.p99Ms.toFixed(2),
    String(x.rtt.samples),
    mib(x.oldPeak.rss),
    mib(x.newPeak.rss),
  ]);
  const errors = r.errors.length > 0 ? `\n\n${r.errors.length} errors: ${r.errors.slice(0, 3).join('; ')}` : '';
  return (
    `## Reload (bench/reload.ts): every pod handed to a new process, live\n\n` +
    table(['', 'reload (start + pods), ms', 'pods moved', 'pod stopped p50 / p99 / max, ms', '64-byte RTT p99 during it, ms', 'max, ms', 'RTT p99 before it, ms', 'RTTs', 'old process peak RSS, MiB', 'new process peak RSS, MiB'], rows) +
    errors
  );
}

export function reloadFigures(r: ReloadFigures): Figure[] {
  return r.runs.flatMap((x) => [
    { key: `reload.${x.pods}.ms`, value: x.reloadMs, unit: 'ms', better: 'lower' as const },
    { key: `reload.${x.pods}.rttP99Ms`, value: x.rtt.p99Ms, unit: 'ms', better: 'lower' as const },
    { key: `reload.${x.pods}.pausedP99Ms`, value: x.pausedMs.p99, unit: 'ms', better: 'lower' as const },
  ]);
}

export function reloadTargets(r: ReloadFigures): TargetResult[] {
  const out: TargetResult[] = [];
  for (const x of r.runs) {
    const limit = LIMITS_MS[x.pods];
    if (limit) out.push({ name: `reload: ${x.pods} pods ≤ ${limit} ms`, value: x.reloadMs, op: '<=', limit, unit: ' ms', pass: x.reloadMs <= limit });
    out.push({ name: `reload: ${x.pods} pods, 64-byte RTT p99 during it ≤ ${P99_LIMIT_MS} ms`, value: x.rtt.p99Ms, op: '<=', limit: P99_LIMIT_MS, unit: ' ms', pass: x.rtt.p99Ms <= P99_LIMIT_MS });
  }
  return out;
}
