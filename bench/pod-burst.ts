// Many pods starting at once (a node booting its pods, a burst of sandboxes): N proxies spawned
// together as the runtime spawns them, and the time until every one has answered its first
// request (an echo through its listen socket, the guest already up). Subjects as in
// pod-start.ts; repetitions interleaved. CPU: every proxy's until its answer, plus the host's
// meanwhile for handles.
import { performance } from 'node:perf_hooks';
import { Child, probe } from './peers.js';
import type { StartSubject } from './pod-start.js';
import { cpuTimeMs, sleep } from './proc.js';
import { summarize, type Summary } from './stats.js';

export interface BurstFigures {
  pods: number;
  reps: number;
  /** Spawn of the first to the answer of the last, ms. */
  allAnsweredMs: Record<string, Summary>;
  /** CPU ms of all of them together until each answered (and the host's, for handles). */
  cpuMs: Record<string, Summary>;
  errors: string[];
}

/** Retry interval of each pod's client: 50 clients polling every millisecond would load the machine themselves. */
const RETRY_MS = 5;

async function burstOnce(s: StartSubject, sock: (name: string) => string, pods: number, tag: string): Promise<{ ms: number; cpuMs: number }> {
  const companion0 = s.companionPid ? cpuTimeMs(s.companionPid) : 0;
  const listens = Array.from({ length: pods }, (_, i) => sock(`b${tag}-${i}.sock`));
  const t0 = performance.now();
  const children = listens.map((l) => new Child(s.key, s.spawn(l)));
  try {
    const cpu = await Promise.all(
      listens.map(async (listen, i) => {
        const child = children[i]!;
        for (const deadline = t0 + 60_000; ; await sleep(RETRY_MS)) {
          if (await probe(listen, 5000)) return cpuTimeMs(child.pid);
          if (!child.alive) throw new Error(`${s.key} exited before answering\n${child.stderrTail.join('\n')}`);
          if (performance.now() > deadline) throw new Error(`${s.key}: no answer within 60 s`);
        }
      }),
    );
    const ms = performance.now() - t0;
    const host = s.companionPid ? cpuTimeMs(s.companionPid) - companion0 : 0;
    return { ms, cpuMs: cpu.reduce((a, b) => a + b, 0) + host };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await s.settle?.();
  }
}

export async function measureBurst(subjects: StartSubject[], sock: (name: string) => string, pods: number, reps: number): Promise<BurstFigures> {
  const ms: Record<string, number[]> = Object.fromEntries(subjects.map((s) => [s.key, []]));
  const cpu: Record<string, number[]> = Object.fromEntries(subjects.map((s) => [s.key, []]));
  const errors: string[] = [];
  for (let rep = 0; rep < reps; rep++) {
    for (let i = 0; i < subjects.length; i++) {
      const s = subjects[(i + rep) % subjects.length]!;
      try {
        const r = await burstOnce(s, sock, pods, `${s.key}-${rep}`);
        ms[s.key]!.push(r.ms);
        cpu[s.key]!.push(r.cpuMs);
      } catch (err) {
        errors.push((err as Error).message.split('\n')[0]!);
      }
    }
  }
  const summaries = (by: Record<string, number[]>) => Object.fromEntries(subjects.map((s) => [s.key, summarize(by[s.key]!)]));
  return { pods, reps, allAnsweredMs: summaries(ms), cpuMs: summaries(cpu), errors };
}
