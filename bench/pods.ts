// Density of the per-pod core: many pods in one process (bench/pod-host.ts, started with the
// launcher's node flags) against one simulated guest per pod, all guests in one other process.
// One pod first, then `steps` times `perStep` more, each new pod checked with one exchange; what
// one more pod costs is the growth of a step / perStep (median of the steps). Set beside the
// separate daemon a pod costs today (its idle USS), this is what a multi-pod host would save.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launcherVariant, startNodeChild, type Child, type LoadClient } from './peers.js';
import type { LatencyResult } from './protocol.js';
import { settledSample, type MemSample } from './proc.js';
import { median, summarize, type Summary } from './stats.js';

export interface PodDensity {
  onePod: MemSample;
  /** Samples after each step. */
  steps: { pods: number; sample: MemSample }[];
  perStep: number;
  /** Growth per added pod, bytes: median of the steps. */
  perPod: { rss: number; pss: number; uss: number };
  perPodUssReps: Summary;
  errors: string[];
}

function waitForPods(host: Child, count: number): Promise<void> {
  return host.waitFor((e) => (e.event === 'pods' && e.count === count) || e.event === 'error', 60_000).then(() => {
    const failed = host.events.find((e) => e.event === 'error');
    if (failed) throw new Error(`pod host: ${String(failed.message)}`);
  });
}

export async function measurePods(dir: string, client: LoadClient, steps: number, perStep: number): Promise<PodDensity> {
  mkdirSync(dir, { recursive: true });
  const total = 1 + steps * perStep;
  const guestPaths = Array.from({ length: total }, (_, i) => join(dir, `g${i}.sock`));
  const guests = await startNodeChild('pod guests', 'sim-guest.js', guestPaths);
  const v = launcherVariant();
  const host = await startNodeChild('pod host', 'pod-host.js', [dir], v.nodeFlags, v.env);
  const errors: string[] = [];
  const addPods = async (from: number, n: number) => {
    host.proc.stdin!.write(`add ${n}\n`);
    await waitForPods(host, from + n);
    for (let i = from; i < from + n; i++) {
      const target = { kind: 'socket' as const, path: join(dir, `p${i}.sock`) };
      const r = await client.run<LatencyResult>({ type: 'connect-rr', target, count: 1, warmup: 0, size: 64 });
      errors.push(...r.errors.map((e) => `pod ${i}: ${e}`));
    }
  };
  try {
    await addPods(0, 1);
    const onePod = (await settledSample(host.pid, { minMs: 1500, maxMs: 4000 }))!;
    const samples: PodDensity['steps'] = [];
    const per = { rss: [] as number[], pss: [] as number[], uss: [] as number[] };
    let before = onePod;
    for (let step = 0; step < steps; step++) {
      await addPods(1 + step * perStep, perStep);
      const s = (await settledSample(host.pid, { minMs: 1500, maxMs: 4000 }))!;
      for (const k of ['rss', 'pss', 'uss'] as const) per[k].push((s[k] - before[k]) / perStep);
      samples.push({ pods: 1 + (step + 1) * perStep, sample: s });
      before = s;
    }
    return {
      onePod,
      steps: samples,
      perStep,
      perPod: { rss: median(per.rss), pss: median(per.pss), uss: median(per.uss) },
      perPodUssReps: summarize(per.uss),
      errors,
    };
  } finally {
    await host.stop();
    await guests.stop();
  }
}
