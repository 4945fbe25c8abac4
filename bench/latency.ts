// Latency: 64-byte request/response round trips over one long-lived connection (a shim's RPCs),
// connect+request+close (the runtime CLI's pattern), and a storm of clients connecting at once
// (500 parallel `docker exec`, proxy #77). Repetitions are interleaved across paths.
import type { LoadClient } from './peers.js';
import type { LatencyResult, StormResult } from './protocol.js';
import { percentiles, summarize, type Summary } from './stats.js';
import type { BenchPath } from './throughput.js';

export interface LatencyFigures {
  /** Median over repetitions of each repetition's percentile, microseconds. */
  p50: Summary;
  p99: Summary;
  p999: Summary;
  samplesPerRep: number;
  errors: string[];
}

export interface StormFigures {
  clients: number;
  /** Time until the last client had its answer, ms. */
  lastAnswerMs: Summary;
  /** Over all repetitions. */
  served: number;
  refused: number;
  attempted: number;
  errors: Record<string, number>;
}

export interface LatencyPhase {
  rr: Record<string, LatencyFigures>;
  connect: Record<string, LatencyFigures>;
  storm: Record<string, StormFigures>;
  size: number;
}

export interface LatencyOptions {
  reps: number;
  rrCount: number;
  connectCount: number;
  stormClients: number;
  stormReps: number;
  size: number;
}

async function latencyKind(
  client: LoadClient,
  paths: BenchPath[],
  type: 'rr' | 'connect-rr',
  count: number,
  reps: number,
  size: number,
): Promise<Record<string, LatencyFigures>> {
  const per: Record<string, { p50: number[]; p99: number[]; p999: number[]; errors: string[] }> = {};
  for (const p of paths) per[p.key] = { p50: [], p99: [], p999: [], errors: [] };
  const warmup = Math.max(20, Math.round(count / 10));
  for (let round = 0; round < reps; round++) {
    for (let i = 0; i < paths.length; i++) {
      const p = paths[(i + round) % paths.length]!;
      const r = await client.run<LatencyResult>({ type, target: p.target, count, warmup, size });
      const acc = per[p.key]!;
      acc.errors.push(...r.errors.slice(0, 3));
      if (r.samplesUs.length === 0) continue;
      const pc = percentiles(r.samplesUs);
      acc.p50.push(pc.p50);
      acc.p99.push(pc.p99);
      acc.p999.push(pc.p999);
    }
  }
  const out: Record<string, LatencyFigures> = {};
  for (const p of paths) {
    const acc = per[p.key]!;
    out[p.key] = { p50: summarize(acc.p50), p99: summarize(acc.p99), p999: summarize(acc.p999), samplesPerRep: count, errors: acc.errors };
  }
  return out;
}

export async function runLatency(
  client: LoadClient,
  paths: BenchPath[],
  stormPaths: BenchPath[],
  o: LatencyOptions,
  log: (line: string) => void,
): Promise<LatencyPhase> {
  const fmt = (r: Record<string, LatencyFigures>) =>
    paths.map((p) => `${p.key} ${r[p.key]!.p50.median.toFixed(0)}/${r[p.key]!.p99.median.toFixed(0)}`).join(', ');
  let t0 = Date.now();
  const rr = await latencyKind(client, paths, 'rr', o.rrCount, o.reps, o.size);
  log(`  request/response ${o.size} B, p50/p99 µs: ${fmt(rr)}  [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
  t0 = Date.now();
  const connect = await latencyKind(client, paths, 'connect-rr', o.connectCount, o.reps, o.size);
  log(`  connect+request+close, p50/p99 µs: ${fmt(connect)}  [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
  t0 = Date.now();
  const storm: Record<string, StormFigures> = {};
  const acc: Record<string, { ms: number[]; served: number; refused: number; errors: Record<string, number> }> = {};
  for (const p of stormPaths) acc[p.key] = { ms: [], served: 0, refused: 0, errors: {} };
  for (let round = 0; round < o.stormReps; round++) {
    for (let i = 0; i < stormPaths.length; i++) {
      const p = stormPaths[(i + round) % stormPaths.length]!;
      const r = await client.run<StormResult>({ type: 'storm', target: p.target, clients: o.stormClients, size: o.size });
      const a = acc[p.key]!;
      a.ms.push(r.lastAnswerMs);
      a.served += r.served;
      a.refused += r.refused;
      for (const [k, v] of Object.entries(r.errors)) a.errors[k] = (a.errors[k] ?? 0) + v;
    }
  }
  for (const p of stormPaths) {
    const a = acc[p.key]!;
    storm[p.key] = {
      clients: o.stormClients,
      lastAnswerMs: summarize(a.ms),
      served: a.served,
      refused: a.refused,
      attempted: o.stormClients * o.stormReps,
      errors: a.errors,
    };
  }
  log(
    `  storm of ${o.stormClients}: ${stormPaths
      .map((p) => `${p.key} ${storm[p.key]!.lastAnswerMs.median.toFixed(0)} ms (${storm[p.key]!.served}/${storm[p.key]!.attempted})`)
      .join(', ')}  [${((Date.now() - t0) / 1000).toFixed(1)} s]`,
  );
  return { rr, connect, storm, size: o.size };
}
