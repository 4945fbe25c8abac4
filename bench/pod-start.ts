// Pod start: each pod's proxy is spawned when the pod starts and the runtime's first request waits
// for it. Measured from spawn to the first answered request through the listen socket (an echo
// exchange with the Go peer, already up, as the agent is), the client busy-looping connect() as the
// runtime's does; next to a bare `node -e 0` (spawn to exit), the floor of any Node daemon.
// Runs are interleaved across subjects (shuffled afresh each round). Beside the wall time, the CPU
// time the process used until then, which other load on a shared machine moves far less; for a
// pod started through a per-pod handle of host mode, the handle's CPU plus what the host spent
// meanwhile (its /proc CPU counters before and after).
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { Child, daemonEnv, probe, REPO_ROOT, runtimeArgv } from './peers.js';
import { cpuTimeMs, sleep } from './proc.js';
import { summarize, type Summary } from './stats.js';

export interface StartSubject {
  key: string;
  /** Spawns it; with a listen socket path for a proxy, without for the bare Node start. */
  spawn: (listen: string) => ChildProcess;
  /** A proxy (answered request) or a bare process (exit). */
  kind: 'proxy' | 'bare';
  /** A process that does part of the work (the host behind a per-pod handle): its CPU counts too. */
  companionPid?: number;
  /** Runs after each start is stopped (the host letting the pod go), before the next one. */
  settle?: () => Promise<void>;
}

export interface PodStartFigures {
  runs: number;
  /** Milliseconds per subject: spawn to first answer (proxies) or to exit (bare Node). */
  ms: Record<string, Summary>;
  /** CPU milliseconds (all threads) the process used until its first answer; bare Node: until its one line ran. */
  cpuMs: Record<string, Summary>;
  /** Of cpuMs, what the companion process (the host) used, for the subjects that have one. */
  companionCpuMs: Record<string, Summary>;
  /**
   * Runs whose first accepted connection got no answer within 2 s (the client then connected
   * again): a connection the daemon accepted and lost during start-up.
   */
  unanswered: Record<string, number>;
  /** What bin/kata-proxy started from (bench/peers.ts launcherEntry). */
  daemonEntry?: string;
  errors: string[];
}

export const bareNode: StartSubject = {
  key: 'node',
  kind: 'bare',
  spawn: () =>
    spawn(process.execPath, ['-e', 'const u = process.cpuUsage(); process.stdout.write(`${(u.user + u.system) / 1000}\\n`)'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    }),
};

interface Run {
  ms: number;
  cpuMs: number;
  companionCpuMs: number;
  unanswered: boolean;
}

async function once(s: StartSubject, listen: string): Promise<Run> {
  const companion0 = s.companionPid ? cpuTimeMs(s.companionPid) : 0;
  const t0 = performance.now();
  const proc = s.spawn(listen);
  if (s.kind === 'bare') {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise((r) => proc.once('exit', r));
    if (code !== 0) throw new Error(`${s.key} exited with ${String(code)}`);
    return { ms: performance.now() - t0, cpuMs: Number(out), companionCpuMs: 0, unanswered: false };
  }
  const child = new Child(s.key, proc);
  try {
    const deadline = t0 + 20_000;
    const seen = { connected: false };
    let unanswered = false;
    for (;;) {
      if (await probe(listen, 2000, seen)) {
        const ms = performance.now() - t0;
        const companionCpuMs = s.companionPid ? cpuTimeMs(s.companionPid) - companion0 : 0;
        return { ms, cpuMs: cpuTimeMs(child.pid) + companionCpuMs, companionCpuMs, unanswered };
      }
      unanswered ||= seen.connected;
      if (!child.alive) throw new Error(`${s.key} exited before answering\n${child.stderrTail.join('\n')}`);
      if (performance.now() > deadline) throw new Error(`${s.key}: no answer within 20 s`);
      await sleep(1);
    }
  } finally {
    await child.stop();
    await s.settle?.();
  }
}

/**
 * The subjects' order in one round: shuffled afresh each round (seeded by the round, so a run can
 * be repeated). In a fixed rotation a subject always followed the same one, and inherited what
 * that one left in the caches: a handle's start right after the Node daemons' found the host cold.
 */
export function roundOrder(n: number, round: number): number[] {
  let seed = (round + 2) * 0x9e3779b9;
  const next = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

export async function measurePodStart(subjects: StartSubject[], sock: (name: string) => string, runs: number): Promise<PodStartFigures> {
  const samples: Record<string, number[]> = Object.fromEntries(subjects.map((s) => [s.key, []]));
  const cpu: Record<string, number[]> = Object.fromEntries(subjects.map((s) => [s.key, []]));
  const companionCpu: Record<string, number[]> = Object.fromEntries(subjects.map((s) => [s.key, []]));
  const unanswered: Record<string, number> = Object.fromEntries(subjects.map((s) => [s.key, 0]));
  const errors: string[] = [];
  // One untimed round first: page cache, the Go peer's first session.
  for (let round = -1; round < runs; round++) {
    for (const i of roundOrder(subjects.length, round)) {
      const s = subjects[i]!;
      try {
        const r = await once(s, sock(`start-${s.key}-${round + 1}.sock`));
        if (round >= 0) {
          samples[s.key]!.push(r.ms);
          cpu[s.key]!.push(r.cpuMs);
          companionCpu[s.key]!.push(r.companionCpuMs);
        }
        if (r.unanswered) unanswered[s.key]!++;
      } catch (err) {
        errors.push((err as Error).message.split('\n')[0]!);
      }
    }
  }
  const summaries = (by: Record<string, number[]>) => Object.fromEntries(subjects.map((s) => [s.key, summarize(by[s.key]!)]));
  const withCompanion = subjects.filter((s) => s.companionPid);
  return {
    runs,
    ms: summaries(samples),
    cpuMs: summaries(cpu),
    companionCpuMs: Object.fromEntries(withCompanion.map((s) => [s.key, summarize(companionCpu[s.key]!)])),
    unanswered,
    errors,
  };
}

/** A proxy started as the runtime starts it (its argv, no stdio), against the guest socket `mux`. */
export function proxySubject(key: string, bin: string, mux: string, env: NodeJS.ProcessEnv = {}, extra: Partial<StartSubject> = {}, binArgs: string[] = []): StartSubject {
  let n = 0;
  return {
    key,
    kind: 'proxy',
    spawn: (listen) =>
      spawn(bin, [...binArgs, ...runtimeArgv({ listen, mux, sandbox: `start-${key}-${++n}` })], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...daemonEnv(), ...env },
        cwd: REPO_ROOT,
      }),
    ...extra,
  };
}

/** A bare `node -e` of another node binary (another Node line). */
export function bareNodeOf(key: string, node: string): StartSubject {
  return { ...bareNode, key, spawn: () => spawn(node, ['-e', 'const u = process.cpuUsage(); process.stdout.write(`${(u.user + u.system) / 1000}\\n`)'], { stdio: ['ignore', 'pipe', 'ignore'] }) };
}
