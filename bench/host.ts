// Host mode (`kata-proxy host`, one process for every pod) against per-pod daemons, in the same run:
// - memory: the host's USS/PSS with 1, 100 and 1,000 pods (a live session with a simulated guest,
//   all guests in one other process, and one idle connection each), the marginal cost of a pod,
//   and the same fleet of 20 pods as per-pod daemons (PSS summed over the processes);
// - fairness: req/resp p99 of one pod while another pod of the same process runs bulk uploads,
//   against that pod alone (and the same for two per-pod daemons);
// - aggregate throughput of 8 pods uploading at once through one host against 8 per-pod daemons;
// - restart: SIGKILL, then the time from the host's spawn until every one of 100 pods answers;
// - pod start: `kata-proxy pod add` (and a bare PUT) to the first answer through the new listen
//   socket, beside the per-pod daemon's spawn to first answer (bench/pod-start.ts).
// Every pod's guest is the hashicorp/yamux Go peer (no Node process to share the host's pages).
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { controlRequest } from '../src/host/control-client.js';
import { Child, daemonEnv, extraHostArgs, LAUNCHER, LoadClient, probe, startDaemon, type DaemonPaths } from './peers.js';
import { measurePodStart, proxySubject } from './pod-start.js';
import { groupPss, settledSample, sleep, type MemSample } from './proc.js';
import type { HoldResult, LatencyResult, Target, ThroughputResult } from './protocol.js';
import { table, type Figure, type TargetResult } from './report-parts.js';
import { percentiles, ratio, summarize, type Summary } from './stats.js';

const MiB = 1 << 20;
const PER_POD_LIMIT = 64 * 1024;
const FAIRNESS_LIMIT = 2;
const AGGREGATE_LIMIT = 0.8;

export interface HostOptions {
  /** A directory of its own for sockets and state files. */
  dir: string;
  /** The Go peer's mux socket. */
  goMux: string;
  client: LoadClient;
  quick: boolean;
  reps: number;
  startRuns: number;
}

export interface HostFigures {
  memory: { pods: number; sample: MemSample }[];
  /** Growth per pod between the last two steps, bytes. */
  perPod: { uss: number; pss: number };
  /** The same pods as per-pod daemons and in one host: PSS with the node binary counted once, whole (proc.ts groupPss). */
  fleet: { pods: number; daemonsPss: number; hostPss: number };
  fairness: Record<'host' | 'daemons', { aloneP99Us: Summary; busyP99Us: Summary; ratio: number }>;
  /** 8 pods uploading at once, MiB/s in all. */
  aggregate: { pods: number; bytesPerPod: number; hostMiBps: Summary; daemonsMiBps: Summary };
  restart: { pods: number; controlMs: Summary; allServingMs: Summary };
  /** Spawn/request to the first answer through the new pod's listen socket, ms. */
  podStart: { podAddMs: Summary; putMs: Summary; daemonMs: Summary };
  errors: string[];
}

/** A `kata-proxy host` of its own, as systemd would run it. */
export class HostProcess {
  readonly control: string;
  readonly child: Child;

  private constructor(
    readonly dir: string,
    child: Child,
  ) {
    this.control = join(dir, 'host.sock');
    this.child = child;
  }

  /** `stateDir`: where the state file goes (the service's is in /run/kata-proxy, a tmpfs). */
  static spawn(dir: string, stateDir = dir): HostProcess {
    const argv = ['host', '-control-socket', join(dir, 'host.sock'), '-state-file', join(stateDir, 'pods.json'), '-log', 'warn', ...extraHostArgs()];
    return new HostProcess(dir, new Child('host', spawn(LAUNCHER, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: daemonEnv() })));
  }

  static async start(dir: string, stateDir = dir): Promise<HostProcess> {
    const h = HostProcess.spawn(dir, stateDir);
    await h.untilControl();
    return h;
  }

  get pid(): number {
    return this.child.pid;
  }

  async untilControl(): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (!this.child.alive) throw new Error(`host exited during start-up\n${this.child.stderrTail.join('\n')}`);
      const ok = await controlRequest(this.control, 'GET', '/pods', undefined, 2000).then((r) => r.status === 200, () => false);
      if (ok) return;
      if (Date.now() > deadline) throw new Error('host: no control socket within 20 s');
      await sleep(2);
    }
  }

  /** PUT each pod (50 at a time), answered once its session is up. */
  async add(pods: DaemonPaths[]): Promise<void> {
    for (let i = 0; i < pods.length; i += 50) {
      await Promise.all(
        pods.slice(i, i + 50).map(async (p) => {
          const r = await controlRequest(this.control, 'PUT', `/pods/${p.sandbox}?wait=serving`, { listenSocket: p.listen, muxSocket: p.mux }, 30_000);
          if (r.status !== 201) throw new Error(`PUT ${p.sandbox}: ${r.status} ${JSON.stringify(r.body)}`);
        }),
      );
    }
  }

  async remove(id: string): Promise<void> {
    await controlRequest(this.control, 'DELETE', `/pods/${id}`, undefined, 20_000);
  }

  stop(): Promise<number | null> {
    return this.child.stop();
  }
}

const socketTarget = (path: string): Target => ({ kind: 'socket', path });

function podPaths(dir: string, prefix: string, n: number, mux?: string): DaemonPaths[] {
  return Array.from({ length: n }, (_, i) => ({ listen: join(dir, `${prefix}${i}.sock`), mux: mux ?? join(dir, `g${i}.sock`), sandbox: `${prefix}${i}` }));
}

/** One idle connection per pod, each after one echo exchange (the load client keeps them). */
async function holdOne(client: LoadClient, pods: DaemonPaths[], errors: string[]): Promise<void> {
  for (let i = 0; i < pods.length; i += 50) {
    const held = await Promise.all(pods.slice(i, i + 50).map((p) => client.run<HoldResult>({ type: 'hold', target: socketTarget(p.listen), count: 1, batch: 1 })));
    for (const h of held) for (const [code, n] of Object.entries(h.errors)) errors.push(`hold: ${code} ×${n}`);
  }
}

/** Until every listen socket answers an echo; ms since `t0`. */
async function untilAllServe(pods: DaemonPaths[], t0: number, timeoutMs = 60_000): Promise<number> {
  let last = 0;
  await Promise.all(
    pods.map(async (p) => {
      const deadline = t0 + timeoutMs;
      while (!(await probe(p.listen, 2000))) {
        if (performance.now() > deadline) throw new Error(`${p.sandbox} does not serve within ${timeoutMs} ms`);
        await sleep(2);
      }
      last = Math.max(last, performance.now() - t0);
    }),
  );
  return last;
}

async function measureMemory(o: HostOptions, errors: string[]): Promise<Pick<HostFigures, 'memory' | 'perPod' | 'fleet' | 'restart'>> {
  const steps = o.quick ? [1, 10, 30] : [1, 100, 1000];
  const fleetPods = o.quick ? 5 : 20;
  const restartPods = o.quick ? 20 : 100;
  const settle = o.quick ? { minMs: 300, maxMs: 1500 } : { minMs: 1500, maxMs: 5000 };
  const dir = join(o.dir, 'mem');
  mkdirSync(dir, { recursive: true });
  // The guests are sessions of the hashicorp/yamux Go peer: no Node process shares the host's pages.
  const pods = podPaths(dir, 'p', steps.at(-1)!, o.goMux);
  {
    const memory: HostFigures['memory'] = [];
    let fleetHostPss = NaN;
    const host = await HostProcess.start(dir);
    try {
      let added = 0;
      for (const n of steps) {
        const more = pods.slice(added, n);
        await host.add(more);
        await holdOne(o.client, more, errors);
        added = n;
        memory.push({ pods: n, sample: (await settledSample(host.pid, settle))! });
      }
      await o.client.run({ type: 'release' });
    } finally {
      await host.stop();
    }
    const [a, b] = memory.slice(-2) as [HostFigures['memory'][0], HostFigures['memory'][0]];
    const perPod = { uss: (b.sample.uss - a.sample.uss) / (b.pods - a.pods), pss: (b.sample.pss - a.sample.pss) / (b.pods - a.pods) };

    // The fleet: as many pods in a fresh host, then as per-pod daemons, one idle connection each.
    const fleet = pods.slice(0, fleetPods);
    const fleetDir = join(o.dir, 'fleet');
    mkdirSync(fleetDir, { recursive: true });
    const fleetHost = await HostProcess.start(fleetDir);
    try {
      await fleetHost.add(fleet);
      await holdOne(o.client, fleet, errors);
      await settledSample(fleetHost.pid, settle);
      fleetHostPss = groupPss([fleetHost.pid]);
      await o.client.run({ type: 'release' });
    } finally {
      await fleetHost.stop();
    }
    const daemons: Child[] = [];
    let daemonsPss = NaN;
    try {
      for (const p of fleet) daemons.push(await startDaemon(p));
      await holdOne(o.client, fleet, errors);
      await settledSample(daemons.at(-1)!.pid, settle);
      daemonsPss = groupPss(daemons.map((d) => d.pid));
      await o.client.run({ type: 'release' });
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
    }

    // Restart: the pods come back from the state file after a SIGKILL.
    const restartDir = join(o.dir, 'restart');
    mkdirSync(restartDir, { recursive: true });
    const restartSet = pods.slice(0, restartPods).map((p, i) => ({ ...p, listen: join(restartDir, `r${i}.sock`), sandbox: `r${i}` }));
    let h = await HostProcess.start(restartDir);
    const controlMs: number[] = [];
    const allMs: number[] = [];
    try {
      await h.add(restartSet);
      for (let rep = 0; rep < (o.quick ? 1 : o.reps); rep++) {
        h.child.proc.kill('SIGKILL');
        await h.child.exited;
        const t0 = performance.now();
        h = HostProcess.spawn(restartDir);
        const ready = h.untilControl().then(() => controlMs.push(performance.now() - t0));
        allMs.push(await untilAllServe(restartSet, t0));
        await ready;
      }
    } finally {
      await h.stop();
    }
    return {
      memory,
      perPod,
      fleet: { pods: fleetPods, daemonsPss, hostPss: fleetHostPss },
      restart: { pods: restartPods, controlMs: summarize(controlMs), allServingMs: summarize(allMs) },
    };
  }
}

/** p99 (µs) of req/resp on `quiet` alone, then while `busy` uploads without pause (from another load client). */
async function p99AloneAndBusy(o: HostOptions, bulk: LoadClient, quiet: string, busy: string, count: number): Promise<[number, number]> {
  const rr = () => o.client.run<LatencyResult>({ type: 'rr', target: socketTarget(quiet), count, warmup: 100, size: 64 });
  const alone = await rr();
  let stop = false;
  const load = (async () => {
    while (!stop) await bulk.run<ThroughputResult>({ type: 'throughput', target: socketTarget(busy), dir: 'up', streams: 1, bytesPerStream: 16 * MiB, verify: false });
  })();
  await sleep(100);
  const loaded = await rr();
  stop = true;
  await load;
  return [percentiles(alone.samplesUs).p99, percentiles(loaded.samplesUs).p99];
}

/** Bytes per second of `targets` uploading at once (half from each load client). */
async function aggregate(clients: LoadClient[], targets: string[], bytes: number, verify: boolean, errors: string[]): Promise<number> {
  const t0 = performance.now();
  const results = await Promise.all(
    targets.map((path, i) => clients[i % clients.length]!.run<ThroughputResult>({ type: 'throughput', target: socketTarget(path), dir: 'up', streams: 1, bytesPerStream: bytes, verify })),
  );
  const seconds = (performance.now() - t0) / 1000;
  for (const r of results) errors.push(...r.errors);
  return results.reduce((s, r) => s + r.bytes, 0) / MiB / seconds;
}

async function measureTraffic(o: HostOptions, errors: string[]): Promise<Pick<HostFigures, 'fairness' | 'aggregate' | 'podStart'>> {
  const dir = join(o.dir, 'go');
  mkdirSync(dir, { recursive: true });
  const n = 8;
  const hostPods = podPaths(dir, 'h', n, o.goMux);
  const daemonPods = podPaths(dir, 'd', n, o.goMux);
  const bulk = await LoadClient.start();
  const host = await HostProcess.start(dir);
  const daemons: Child[] = [];
  try {
    await host.add(hostPods);
    for (const p of daemonPods) daemons.push(await startDaemon(p));

    const reps = o.quick ? 1 : o.reps;
    const rrCount = o.quick ? 500 : 3000;
    const p99 = { host: { alone: [] as number[], busy: [] as number[] }, daemons: { alone: [] as number[], busy: [] as number[] } };
    for (let rep = 0; rep < reps; rep++) {
      for (const [key, pods] of [['host', hostPods], ['daemons', daemonPods]] as const) {
        const [alone, busy] = await p99AloneAndBusy(o, bulk, pods[0]!.listen, pods[1]!.listen, rrCount);
        p99[key].alone.push(alone);
        p99[key].busy.push(busy);
      }
    }
    const fairness = Object.fromEntries(
      (['host', 'daemons'] as const).map((k) => {
        const alone = summarize(p99[k].alone);
        const busy = summarize(p99[k].busy);
        return [k, { aloneP99Us: alone, busyP99Us: busy, ratio: ratio(busy.median, alone.median) }];
      }),
    ) as HostFigures['fairness'];

    const bytesPerPod = o.quick ? 4 * MiB : 32 * MiB;
    const clients = [o.client, bulk];
    const mibps = { host: [] as number[], daemons: [] as number[] };
    await aggregate(clients, hostPods.map((p) => p.listen), MiB, true, errors);
    await aggregate(clients, daemonPods.map((p) => p.listen), MiB, true, errors);
    for (let rep = 0; rep < reps; rep++) {
      mibps.host.push(await aggregate(clients, hostPods.map((p) => p.listen), bytesPerPod, false, errors));
      mibps.daemons.push(await aggregate(clients, daemonPods.map((p) => p.listen), bytesPerPod, false, errors));
    }

    // Pod start: `pod add` (a process, as kata-proxy-pod@.service runs it) and a bare PUT.
    const runs = o.startRuns;
    const podAddMs: number[] = [];
    const putMs: number[] = [];
    for (let run = 0; run <= runs; run++) {
      const [a, b] = podPaths(dir, `s${run}-`, 2, o.goMux);
      const t0 = performance.now();
      const add = spawn(
        LAUNCHER,
        ['pod', 'add', a!.sandbox, '-control-socket', host.control, '-listen-socket', `unix://${a!.listen}`, '-mux-socket', a!.mux, '-log', 'warn'],
        { stdio: 'ignore', env: daemonEnv() },
      );
      const addMs = await untilAllServe([a!], t0, 20_000);
      await new Promise((r) => (add.exitCode === null ? add.once('exit', r) : r(null)));
      const t1 = performance.now();
      void controlRequest(host.control, 'PUT', `/pods/${b!.sandbox}`, { listenSocket: b!.listen, muxSocket: b!.mux }, 20_000);
      const bareMs = await untilAllServe([b!], t1, 20_000);
      if (run > 0) {
        podAddMs.push(addMs);
        putMs.push(bareMs);
      }
      await host.remove(a!.sandbox);
      await host.remove(b!.sandbox);
    }
    const daemonStart = await measurePodStart([proxySubject('proxy', LAUNCHER, o.goMux)], (name) => join(dir, name), runs);
    errors.push(...daemonStart.errors);
    return {
      fairness,
      aggregate: { pods: n, bytesPerPod, hostMiBps: summarize(mibps.host), daemonsMiBps: summarize(mibps.daemons) },
      podStart: { podAddMs: summarize(podAddMs), putMs: summarize(putMs), daemonMs: daemonStart.ms.proxy! },
    };
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    await host.stop();
    await bulk.stop();
  }
}

export async function measureHost(o: HostOptions, log: (line: string) => void): Promise<HostFigures> {
  const errors: string[] = [];
  const mem = await measureMemory(o, errors);
  const last = mem.memory.at(-1)!;
  log(
    `  host USS ${mem.memory.map((m) => `${m.pods} pods ${(m.sample.uss / MiB).toFixed(1)} MiB`).join(', ')}; ` +
      `+${(mem.perPod.uss / 1024).toFixed(1)} KiB USS per pod; ${last.pods} pods PSS ${(last.sample.pss / MiB).toFixed(1)} MiB`,
  );
  log(
    `  ${mem.fleet.pods} pods: host PSS ${(mem.fleet.hostPss / MiB).toFixed(1)} MiB, per-pod daemons ${(mem.fleet.daemonsPss / MiB).toFixed(1)} MiB; ` +
      `restart of ${mem.restart.pods} pods: all serving after ${mem.restart.allServingMs.median.toFixed(0)} ms (control socket ${mem.restart.controlMs.median.toFixed(0)} ms)`,
  );
  const traffic = await measureTraffic(o, errors);
  const f = traffic.fairness;
  log(
    `  busy neighbour: p99 ${f.host.aloneP99Us.median.toFixed(0)} → ${f.host.busyP99Us.median.toFixed(0)} µs in the host (${f.host.ratio.toFixed(2)}×), ` +
      `${f.daemons.aloneP99Us.median.toFixed(0)} → ${f.daemons.busyP99Us.median.toFixed(0)} µs with daemons (${f.daemons.ratio.toFixed(2)}×)`,
  );
  const a = traffic.aggregate;
  const ps = traffic.podStart;
  log(
    `  ${a.pods} pods uploading: host ${a.hostMiBps.median.toFixed(0)} MiB/s, daemons ${a.daemonsMiBps.median.toFixed(0)} MiB/s; ` +
      `pod add ${ps.podAddMs.median.toFixed(1)} ms, PUT ${ps.putMs.median.toFixed(1)} ms, daemon spawn ${ps.daemonMs.median.toFixed(1)} ms` +
      `${errors.length ? `; ! ${errors.slice(0, 3).join('; ')}` : ''}`,
  );
  return { ...mem, ...traffic, errors };
}

// ---- report hooks --------------------------------------------------------------------------------

const aggregateRatio = (h: HostFigures) => ratio(h.aggregate.hostMiBps.median, h.aggregate.daemonsMiBps.median);
/** The busy p99 in one host against the busy p99 of two separate daemons: what sharing an event loop adds. */
const busyVsDaemons = (h: HostFigures) => ratio(h.fairness.host.busyP99Us.median, h.fairness.daemons.busyP99Us.median);

export function hostSection(h: HostFigures): string {
  const mib = (b: number) => (b / MiB).toFixed(1);
  const s = (v: Summary, digits = 0) => `${v.median.toFixed(digits)}${v.n > 1 ? ` [${v.min.toFixed(digits)}–${v.max.toFixed(digits)}]` : ''}`;
  const memRows = h.memory.map((m) => [`host, ${m.pods} pods`, mib(m.sample.rss), mib(m.sample.pss), mib(m.sample.uss), String(m.sample.threads)]);
  memRows.push([`per pod, ${h.memory.at(-2)!.pods} → ${h.memory.at(-1)!.pods} pods (KiB)`, '', (h.perPod.pss / 1024).toFixed(1), (h.perPod.uss / 1024).toFixed(1), '']);
  memRows.push([`${h.fleet.pods} pods: host (PSS as the only Node process)`, '', mib(h.fleet.hostPss), '', '']);
  memRows.push([`${h.fleet.pods} pods: per-pod daemons (PSS summed, the node binary once)`, '', mib(h.fleet.daemonsPss), '', '']);
  const f = h.fairness;
  const fairRows = (['host', 'daemons'] as const).map((k) => [k === 'host' ? 'two pods in one host' : 'two per-pod daemons', s(f[k].aloneP99Us), s(f[k].busyP99Us), `${f[k].ratio.toFixed(2)}×`]);
  const a = h.aggregate;
  const ps = h.podStart;
  const rows = [
    [`${a.pods} pods uploading at once, MiB/s in all: host`, s(a.hostMiBps)],
    [`… ${a.pods} per-pod daemons`, s(a.daemonsMiBps)],
    ['… host / daemons', `${aggregateRatio(h).toFixed(2)}×`],
    [`restart (SIGKILL): spawn to control socket up, ms`, s(h.restart.controlMs)],
    [`restart: spawn until all ${h.restart.pods} pods answer, ms`, s(h.restart.allServingMs)],
    ['pod start: `kata-proxy pod add` to first answer, ms', s(ps.podAddMs, 1)],
    ['pod start: PUT /pods/ID to first answer, ms', s(ps.putMs, 1)],
    ['pod start: per-pod daemon spawn to first answer, ms', s(ps.daemonMs, 1)],
  ];
  const errors = h.errors.length > 0 ? `\n\n${h.errors.length} errors: ${h.errors.slice(0, 3).join('; ')}` : '';
  return (
    `## Host mode (bench/host.ts): one process for every pod\n\n` +
    `${table(['memory (MiB; a session and one idle connection per pod)', 'RSS', 'PSS', 'USS', 'threads'], memRows)}\n\n` +
    `${table(['req/resp p99 of one pod, µs', 'alone', 'neighbour uploading', 'ratio'], fairRows)}\n\n` +
    `With the neighbour uploading, the pod's p99 in the host is ${busyVsDaemons(h).toFixed(2)}× its p99 as a separate daemon.\n\n` +
    `${table(['', ''], rows)}${errors}`
  );
}

export function hostFigures(h: HostFigures): Figure[] {
  const out: Figure[] = [
    { key: 'host.perPod.uss', value: h.perPod.uss, unit: 'B', better: 'lower' },
    { key: 'host.fleet.pssVsDaemons', value: ratio(h.fleet.hostPss, h.fleet.daemonsPss), unit: '×', better: 'lower' },
    { key: 'host.fairness.p99Ratio', value: h.fairness.host.ratio, unit: '×', better: 'lower' },
    { key: 'host.fairness.busyVsDaemons', value: busyVsDaemons(h), unit: '×', better: 'lower' },
    { key: 'host.aggregate.vsDaemons', value: aggregateRatio(h), unit: '×', better: 'higher' },
    { key: 'host.restart.allServingMs', value: h.restart.allServingMs.median, unit: 'ms', better: 'lower' },
    { key: 'host.podStart.podAddMs', value: h.podStart.podAddMs.median, unit: 'ms', better: 'lower' },
  ];
  return out.filter((g) => Number.isFinite(g.value));
}

export function hostTargets(h: HostFigures): TargetResult[] {
  const kib = h.perPod.uss / 1024;
  const fair = h.fairness.host.ratio;
  const agg = aggregateRatio(h);
  return [
    { name: 'host: marginal USS per pod ≤ 64 KiB', value: kib, op: '<=', limit: PER_POD_LIMIT / 1024, unit: ' KiB', pass: kib <= PER_POD_LIMIT / 1024 },
    { name: 'host: busy neighbour raises req/resp p99 ≤ 2×', value: fair, op: '<=', limit: FAIRNESS_LIMIT, unit: '×', pass: fair <= FAIRNESS_LIMIT },
    { name: 'host: 8 busy pods ≥ 0.8× 8 per-pod daemons', value: agg, op: '>=', limit: AGGREGATE_LIMIT, unit: '×', pass: agg >= AGGREGATE_LIMIT },
  ];
}
