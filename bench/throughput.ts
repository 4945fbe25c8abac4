// Throughput: upload (sink), download (source) and echo on 1 and on 64 concurrent streams, for
// every path of the run (plain socket baseline, engine direct, proxy -> Go peer, proxy -> simulated
// guest). Repetitions are interleaved across paths (order rotated each round) so that a noisy
// neighbour hits every path alike; the first round of each scenario is an untimed warm-up that
// checks every byte by sha256.
import type { LoadClient } from './peers.js';
import { cpuSeconds, PeakSampler, type MemSample } from './proc.js';
import type { Direction, Target, ThroughputResult } from './protocol.js';
import { summarize, type Summary } from './stats.js';

export interface BenchPath {
  /** Short key used in results.json. */
  key: string;
  label: string;
  target: Target;
  /** The daemon's pid for paths through the proxy (peak memory is sampled during 64-stream runs). */
  daemonPid?: number;
  /** The processes at work on this path by role (client, proxy, guest/server): CPU use is reported. */
  pids: Record<string, number>;
  /** Runs the scenario itself instead of the load client (the Go peer's own Go <-> Go bench). */
  run?: (dir: Direction, streams: number, bytesPerStream: number, verify: boolean) => Promise<ThroughputResult>;
}

export interface ScenarioSpec {
  dir: Direction;
  streams: number;
  bytesPerStream: number;
  /** Paths to leave out of this scenario (e.g. to keep the run short). */
  skip?: string[];
  reps?: number;
}

export interface ScenarioResult {
  dir: Direction;
  streams: number;
  bytesPerStream: number;
  reps: number;
  /** MiB/s per path. */
  mibps: Record<string, Summary>;
  /** CPU use of each process on the path during the timed runs, % of one core (100 = one core busy). */
  cpu: Record<string, Record<string, number>>;
  /**
   * CPU-seconds (user + system, /proc/PID/stat) each process on the path used per GiB of payload
   * over the timed runs; the payload is counted as MiB/s counts it (echo: once, though it crosses twice).
   */
  cpuSecondsPerGiB?: Record<string, Record<string, number>>;
  /** Peak memory of each proxy daemon during this scenario (64-stream scenarios only). */
  peak?: Record<string, MemSample>;
  errors: Record<string, string[]>;
}

export interface ThroughputPhase {
  scenarios: ScenarioResult[];
  /** Peak memory of each proxy daemon during its 64-stream runs. */
  peak: Record<string, MemSample>;
}

const MiB = 1 << 20;

export async function runThroughput(
  client: LoadClient,
  paths: BenchPath[],
  specs: ScenarioSpec[],
  defaultReps: number,
  log: (line: string) => void,
): Promise<ThroughputPhase> {
  const scenarios: ScenarioResult[] = [];
  const peak: Record<string, MemSample> = {};
  for (const spec of specs) {
    const active = paths.filter((p) => !spec.skip?.includes(p.key));
    const reps = spec.reps ?? defaultReps;
    const samples: Record<string, number[]> = {};
    const errors: Record<string, string[]> = {};
    const cpuUsed: Record<string, Record<string, number>> = {};
    const wall: Record<string, number> = {};
    const moved: Record<string, number> = {};
    const scenarioPeak: Record<string, MemSample> = {};
    for (const p of active) {
      samples[p.key] = [];
      errors[p.key] = [];
      cpuUsed[p.key] = Object.fromEntries(Object.keys(p.pids).map((role) => [role, 0]));
      wall[p.key] = 0;
      moved[p.key] = 0;
    }
    const t0 = Date.now();
    for (let round = 0; round <= reps; round++) {
      const warmup = round === 0;
      for (let i = 0; i < active.length; i++) {
        const p = active[(i + round) % active.length]!;
        const sampler = spec.streams > 1 && p.daemonPid ? new PeakSampler(p.daemonPid, 50) : null;
        let r: ThroughputResult;
        const cpu0 = Object.entries(p.pids).map(([role, pid]) => [role, cpuSeconds(pid)] as const);
        try {
          r = p.run
            ? await p.run(spec.dir, spec.streams, spec.bytesPerStream, warmup)
            : await client.run<ThroughputResult>({
                type: 'throughput',
                target: p.target,
                dir: spec.dir,
                streams: spec.streams,
                bytesPerStream: spec.bytesPerStream,
                verify: warmup,
              });
        } finally {
          if (sampler) {
            const s = sampler.stop();
            peak[p.key] = maxSample(peak[p.key], s);
            scenarioPeak[p.key] = maxSample(scenarioPeak[p.key], s);
          }
        }
        if (r.errors.length > 0) errors[p.key]!.push(...r.errors.slice(0, 3));
        else if (!warmup) {
          samples[p.key]!.push(r.bytes / MiB / r.seconds);
          // The job's wall time includes a little set-up and tear-down around r.seconds.
          wall[p.key]! += r.seconds;
          moved[p.key]! += r.bytes;
          for (const [role, c0] of cpu0) cpuUsed[p.key]![role]! += cpuSeconds(p.pids[role]!) - c0;
        }
      }
    }
    const mibps: Record<string, Summary> = {};
    const cpu: Record<string, Record<string, number>> = {};
    const cpuSecondsPerGiB: Record<string, Record<string, number>> = {};
    for (const p of active) {
      const gib = moved[p.key]! / 2 ** 30;
      cpuSecondsPerGiB[p.key] = Object.fromEntries(Object.entries(cpuUsed[p.key]!).map(([role, c]) => [role, Math.round((1000 * c) / gib) / 1000]));
      mibps[p.key] = summarize(samples[p.key]!);
      cpu[p.key] = Object.fromEntries(Object.entries(cpuUsed[p.key]!).map(([role, c]) => [role, Math.round((100 * c) / wall[p.key]!)]));
    }
    scenarios.push({
      dir: spec.dir,
      streams: spec.streams,
      bytesPerStream: spec.bytesPerStream,
      reps,
      mibps,
      cpu,
      cpuSecondsPerGiB,
      ...(Object.keys(scenarioPeak).length > 0 ? { peak: scenarioPeak } : {}),
      errors,
    });
    const line = active.map((p) => `${p.key} ${mibps[p.key]!.median.toFixed(0)}`).join(', ');
    log(`  ${spec.dir} x${spec.streams} (${spec.bytesPerStream / MiB} MiB/stream): ${line} MiB/s  [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
    for (const p of active) {
      if (errors[p.key]!.length > 0) log(`    ! ${p.key}: ${errors[p.key]!.slice(0, 3).join('; ')}`);
    }
  }
  return { scenarios, peak };
}

export function maxSample(a: MemSample | undefined, b: MemSample): MemSample {
  if (!a) return b;
  return {
    rss: Math.max(a.rss, b.rss),
    pss: Math.max(a.pss, b.pss),
    uss: Math.max(a.uss, b.uss),
    anon: Math.max(a.anon, b.anon),
    threads: Math.max(a.threads, b.threads),
  };
}
