// Neighbours: does one pod's trouble reach the others in host mode? Three neighbour pods, each with
// a hashicorp/yamux guest and a steady light load (a 64-byte round trip every 10 ms on a
// long-lived connection, a 4 MiB checked echo every 2 s), while a fourth pod:
//   - floods its console (a `yes` through socat: hundreds of MB/s of 200-byte lines), logged at info
//     to a file (a sink that never drops);
//   - has a guest that resets every stream, with 8 clients reconnecting as fast as they are reset;
//   - transfers in bulk (one download after another).
// The neighbours' p99 with the fourth pod at work is divided by their p99 with it idle, in one
// `kata-proxy host` (four pods in one process), beside per-pod daemons (four processes) and beside
// the Go proxy's design (four Go processes, the yardstick), in the same run, interleaved. Errors or
// wrong bytes any neighbour sees are reported. The round trips are timed in a process that does
// nothing else (the echoes and the 4th pod's load run in others), as every shim is a process of its
// own: the timing loop is never busy with a copy or a compare.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlRequest } from '../src/host/control-client.js';
import { Child, daemonEnv, extraHostArgs, LAUNCHER, LoadClient, probe, runtimeArgv, startNodeChild } from './peers.js';
import { sleep } from './proc.js';
import type { ChurnResult, NeighboursResult, Target, ThroughputResult } from './protocol.js';
import { table, type Figure, type TargetResult } from './report-parts.js';
import { percentiles, ratio, summarize, type Summary } from './stats.js';

const MiB = 1 << 20;
const NEIGHBOURS = 3;
const RATIO_LIMIT = 2;
const SCENARIOS = ['console flood', 'stream resets', 'bulk transfer'] as const;
type Scenario = (typeof SCENARIOS)[number];
/**
 * The Go proxies (the Go kata-proxy's data path, one process per pod: the yardstick) relay no
 * console, so they sit out the console flood.
 */
const MODES = ['host', 'daemons', 'go proxies'] as const;
type Mode = (typeof MODES)[number];
const MODE_NAMES: Record<Mode, string> = { host: 'one host', daemons: 'per-pod daemons', 'go proxies': 'Go proxies' };

export interface NeighboursOptions {
  dir: string;
  /** The Go peer's mux socket (serves every neighbour and the bulk pod). */
  goMux: string;
  client: LoadClient;
  /** The Go proxy's binary (test/go-peer/proxy). */
  goProxy: string;
  quick: boolean;
  reps: number;
}

interface ModeFigures {
  quietP99Us: Summary;
  loadedP99Us: Summary;
  /** Median over repetitions of loaded p99 ÷ quiet p99 (each measured back to back). */
  ratio: number;
  echoQuietMs: number;
  echoLoadedMs: number;
  /** What the 4th pod did, median over the repetitions (a bulk pod's rate differs between the modes). */
  hostile: string;
}

export interface NeighboursFigures {
  scenarios: {
    name: Scenario;
    host: ModeFigures;
    daemons: ModeFigures;
    /** Absent for the console flood (the Go proxy relays no console). */
    goProxies?: ModeFigures;
    /**
     * Median over repetitions of the host's loaded p99 ÷ the daemons' in the same repetition:
     * paired, so that what the machine's other tenants do between repetitions cancels out.
     */
    hostOverDaemons: number;
    /** The same against the Go proxies, where they ran. */
    hostOverGo?: number;
  }[];
  errors: string[];
}

interface PodPaths {
  id: string;
  listen: string;
  mux: string;
  console?: string;
  /** Its guest resets every stream: it never answers a probe, its session is enough. */
  resetsStreams?: boolean;
}

/** The four pods of one mode: `kata-proxy host` with four pods, or four per-pod daemons. */
interface Fleet {
  /** Starts the fourth pod for a scenario (replacing the previous one). */
  hostile(p: PodPaths): Promise<void>;
  dropHostile(): Promise<void>;
  stop(): Promise<void>;
}

function logFile(dir: string, name: string): number {
  return openSync(join(dir, `${name}.log`), 'w');
}

async function untilServes(path: string, alive: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await probe(path))) {
    if (!alive() || Date.now() > deadline) throw new Error(`${what} does not serve`);
    await sleep(10);
  }
}

async function hostFleet(dir: string, neighbours: PodPaths[]): Promise<Fleet> {
  const control = join(dir, 'host.sock');
  const fd = logFile(dir, 'host');
  const argv = ['host', '-control-socket', control, '-state-file', join(dir, 'pods.json'), '-log', 'warn', ...extraHostArgs()];
  const host = new Child('neighbours host', spawn(LAUNCHER, argv, { stdio: ['ignore', 'ignore', fd], env: daemonEnv() }));
  closeSync(fd);
  const put = async (p: PodPaths) => {
    const body = { listenSocket: p.listen, muxSocket: p.mux, logLevel: 'info', ...(p.console ? { agentLogsSocket: p.console } : {}) };
    const r = await controlRequest(control, 'PUT', `/pods/${p.id}?wait=serving`, body, 20_000);
    if (r.status !== 201) throw new Error(`PUT ${p.id}: ${r.status} ${JSON.stringify(r.body)}`);
  };
  const deadline = Date.now() + 20_000;
  while (!(await controlRequest(control, 'GET', '/pods', undefined, 2000).then((r) => r.status === 200, () => false))) {
    if (!host.alive || Date.now() > deadline) throw new Error(`the host does not serve\n${host.stderrTail.join('\n')}`);
    await sleep(10);
  }
  for (const p of neighbours) await put(p);
  let current: PodPaths | null = null;
  const fleet: Fleet = {
    hostile: async (p) => {
      await fleet.dropHostile();
      await put(p);
      current = p;
    },
    dropHostile: async () => {
      if (current) await controlRequest(control, 'DELETE', `/pods/${current.id}`, undefined, 20_000);
      current = null;
    },
    stop: async () => {
      await host.stop();
    },
  };
  return fleet;
}

/** A fleet of per-pod processes: `spawn` starts one pod's. */
async function processFleet(neighbours: PodPaths[], spawnPod: (p: PodPaths) => Child): Promise<Fleet> {
  const children = neighbours.map(spawnPod);
  for (const [i, p] of neighbours.entries()) await untilServes(p.listen, () => children[i]!.alive, p.id);
  let hostile: Child | null = null;
  const fleet: Fleet = {
    hostile: async (p) => {
      await fleet.dropHostile();
      hostile = spawnPod(p);
      const h = hostile;
      await untilServesOrGuestResets(p, () => h.alive);
    },
    dropHostile: async () => {
      await hostile?.stop();
      hostile = null;
    },
    stop: async () => {
      await fleet.dropHostile();
      await Promise.all(children.map((c) => c.stop()));
    },
  };
  return fleet;
}

function spawnGoProxy(bin: string, p: PodPaths): Child {
  const argv = runtimeArgv({ listen: p.listen, mux: p.mux, sandbox: p.id });
  return new Child(`go-proxy ${p.id}`, spawn(bin, argv, { stdio: 'ignore' }));
}

function spawnDaemon(dir: string, p: PodPaths): Child {
  const argv = ['-listen-socket', `unix://${p.listen}`, '-mux-socket', p.mux, '-sandbox', p.id, '-log', 'info'];
  if (p.console) argv.push('-agent-logs-socket', p.console);
  const fd = logFile(dir, p.id);
  const child = new Child(`daemon ${p.id}`, spawn(LAUNCHER, argv, { stdio: ['ignore', 'ignore', fd], env: daemonEnv() }));
  closeSync(fd);
  return child;
}

async function untilServesOrGuestResets(p: PodPaths, alive: () => boolean): Promise<void> {
  if (!p.resetsStreams) return untilServes(p.listen, alive, p.id);
  await sleep(300);
  if (!alive()) throw new Error(`${p.id} exited`);
}

/** What the 4th pod did in one loaded window: how much, of what. */
interface HostileWork {
  amount: number;
  unit: string;
}

/** Runs the hostile pod's load until stop() (the console flood is the console's own writer: it starts here). */
function startHostileLoad(scenario: Scenario, p: PodPaths, bulk: LoadClient): { stop(): Promise<HostileWork | null> } {
  const target: Target = { kind: 'socket', path: p.listen };
  if (scenario === 'console flood') {
    writeFileSync(floodGate(p.console!), '');
    return { stop: async () => null };
  }
  if (scenario === 'stream resets') {
    let stopped = false;
    const runs: ChurnResult[] = [];
    const loop = (async () => {
      while (!stopped) runs.push(await bulk.run<ChurnResult>({ type: 'churn', target, clients: 8, size: 64, durationMs: 500 }));
    })();
    return {
      stop: async () => {
        stopped = true;
        await loop;
        const n = runs.reduce((s, r) => s + r.connections, 0);
        return { amount: n, unit: 'connections reset' };
      },
    };
  }
  let stopped = false;
  let bytes = 0;
  let seconds = 0;
  const loop = (async () => {
    while (!stopped) {
      const r = await bulk.run<ThroughputResult>({ type: 'throughput', target, dir: 'down', streams: 1, bytesPerStream: 64 * MiB, verify: false });
      bytes += r.bytes;
      seconds += r.seconds;
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return { amount: bytes / MiB / seconds, unit: 'MiB/s down' };
    },
  };
}

/** The file whose creation starts the flood: the pod's console is connected, and quiet, before. */
const floodGate = (consolePath: string) => `${consolePath}.go`;

/**
 * `yes` with 199-byte lines, served as QEMU serves console.sock (one client), until killed; it
 * waits for its gate file, so the quiet measurement has the console connected but silent.
 */
function consoleFlood(path: string): ChildProcess {
  const line = 'x'.repeat(199);
  // Bounded: a run that fails before its loaded phase leaves no shell polling for ever.
  const flood = `i=0; until [ -e ${floodGate(path)} ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done; exec yes ${line}`;
  return spawn('socat', ['-u', `SYSTEM:${flood}`, `UNIX-LISTEN:${path},unlink-early`], { stdio: 'ignore' });
}

/** The neighbours' load for `durationMs`: the timed round trips in one process, the echoes in another. */
async function neighboursRun(o: NeighboursOptions, echoClient: LoadClient, targets: Target[], durationMs: number): Promise<NeighboursResult> {
  const job = { type: 'neighbours', targets, intervalMs: 10, size: 64, durationMs, echoBytes: 4 * MiB, echoEveryMs: 2000 } as const;
  const [timed, echoes] = await Promise.all([
    o.client.run<NeighboursResult>({ ...job, part: 'round trips' }),
    echoClient.run<NeighboursResult>({ ...job, part: 'echoes' }),
  ]);
  return { samplesUs: timed.samplesUs, echoesMs: echoes.echoesMs, errors: [...timed.errors, ...echoes.errors] };
}

export async function measureNeighbours(o: NeighboursOptions, log: (line: string) => void): Promise<NeighboursFigures> {
  // 8 s: the p99 falls among the probes that meet a neighbour's own 4 MiB echo (a dozen echoes per window).
  const durationMs = o.quick ? 2000 : 8000;
  // ~2 minutes a repetition; a single one decides little (one mode's p99 moves ±40 % between them).
  const reps = o.quick ? 1 : o.reps;
  const errors: string[] = [];
  const bulk = await LoadClient.start();
  const echoClient = await LoadClient.start();
  const resetDir = join(o.dir, 'reset-guest');
  mkdirSync(resetDir, { recursive: true });
  const resetMux = join(resetDir, 'g.sock');
  const resetGuest = await startNodeChild('resetting guest', 'sim-guest.js', ['--reset-streams', resetMux]);
  const samples = new Map<string, { quiet: number[]; loaded: number[]; ratios: number[]; echoQuiet: number[]; echoLoaded: number[]; hostile: HostileWork[] }>();
  try {
    for (let rep = 0; rep < reps; rep++) {
      // Each repetition starts with the next mode: none always runs first (on a fresh machine
      // state) or last (after the others' hostile pods).
      for (const mode of [...MODES.slice(rep % MODES.length), ...MODES.slice(0, rep % MODES.length)]) {
        const dir = join(o.dir, `${mode}-${rep}`);
        mkdirSync(dir, { recursive: true });
        const neighbours: PodPaths[] = Array.from({ length: NEIGHBOURS }, (_, i) => ({ id: `n${i}`, listen: join(dir, `n${i}.sock`), mux: o.goMux }));
        const targets: Target[] = neighbours.map((p) => ({ kind: 'socket', path: p.listen }));
        const fleet =
          mode === 'host'
            ? await hostFleet(dir, neighbours)
            : await processFleet(neighbours, mode === 'daemons' ? (p) => spawnDaemon(dir, p) : (p) => spawnGoProxy(o.goProxy, p));
        try {
          // A fresh fleet's first seconds (code not yet compiled, buffers not yet grown) would
          // inflate the first scenario's quiet p99: a window of the same load first, not counted.
          const warm = await neighboursRun(o, echoClient, targets, Math.min(durationMs, 4000));
          for (const e of warm.errors) errors.push(`${mode}, warm-up: ${e}`);
          for (const scenario of SCENARIOS) {
            if (mode === 'go proxies' && scenario === 'console flood') continue;
            const hostile: PodPaths = {
              id: scenario === 'stream resets' ? 'reset' : scenario === 'console flood' ? 'flood' : 'bulk',
              listen: join(dir, `${scenario.replace(' ', '-')}.sock`),
              mux: scenario === 'stream resets' ? resetMux : o.goMux,
              resetsStreams: scenario === 'stream resets',
              ...(scenario === 'console flood' ? { console: join(dir, 'console.sock') } : {}),
            };
            const flood = hostile.console ? consoleFlood(hostile.console) : null;
            try {
              await fleet.hostile(hostile);
              const quiet = await neighboursRun(o, echoClient, targets, durationMs);
              const load = startHostileLoad(scenario, hostile, bulk);
              await sleep(300);
              const loaded = await neighboursRun(o, echoClient, targets, durationMs);
              const work = await load.stop();
              for (const e of [...quiet.errors, ...loaded.errors]) errors.push(`${mode}, ${scenario}: ${e}`);
              const key = `${scenario}|${mode}`;
              const s = samples.get(key) ?? { quiet: [], loaded: [], ratios: [], echoQuiet: [], echoLoaded: [], hostile: [] };
              const q = percentiles(quiet.samplesUs).p99;
              const l = percentiles(loaded.samplesUs).p99;
              s.quiet.push(q);
              s.loaded.push(l);
              s.ratios.push(ratio(l, q));
              s.echoQuiet.push(...quiet.echoesMs);
              s.echoLoaded.push(...loaded.echoesMs);
              if (work) s.hostile.push(work);
              samples.set(key, s);
              log(`  ${mode}, ${scenario}: neighbours' p99 ${(q / 1000).toFixed(2)} ms quiet, ${(l / 1000).toFixed(2)} ms loaded (${ratio(l, q).toFixed(2)}×)${work ? `; ${work.amount.toFixed(0)} ${work.unit}` : ''}`);
            } finally {
              flood?.kill('SIGKILL');
              if (hostile.console) rmSync(floodGate(hostile.console), { force: true });
              await fleet.dropHostile();
            }
          }
        } finally {
          await fleet.stop();
        }
      }
    }
  } finally {
    await bulk.stop();
    await echoClient.stop();
    await resetGuest.stop();
  }
  const mode = (scenario: Scenario, m: Mode): ModeFigures | undefined => {
    const s = samples.get(`${scenario}|${m}`);
    if (!s) return undefined;
    return {
      quietP99Us: summarize(s.quiet),
      loadedP99Us: summarize(s.loaded),
      ratio: summarize(s.ratios).median,
      echoQuietMs: summarize(s.echoQuiet).median,
      echoLoadedMs: summarize(s.echoLoaded).median,
      hostile: s.hostile.length > 0 ? `${summarize(s.hostile.map((w) => w.amount)).median.toFixed(0)} ${s.hostile[0]!.unit}` : '',
    };
  };
  /** Median of the per-repetition ratios of the host's loaded p99 to `other`'s. */
  const hostOver = (scenario: Scenario, other: Mode): number | undefined => {
    const host = samples.get(`${scenario}|host`)!.loaded;
    const them = samples.get(`${scenario}|${other}`)?.loaded;
    return them && summarize(host.map((h, i) => ratio(h, them[i]))).median;
  };
  return {
    scenarios: SCENARIOS.map((name) => ({
      name,
      host: mode(name, 'host')!,
      daemons: mode(name, 'daemons')!,
      goProxies: mode(name, 'go proxies'),
      hostOverDaemons: hostOver(name, 'daemons')!,
      hostOverGo: hostOver(name, 'go proxies'),
    })),
    errors,
  };
}

const ms = (us: number) => (Number.isFinite(us) ? `${(us / 1000).toFixed(2)} ms` : '–');
const x = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : '–');

export function neighboursSection(f: NeighboursFigures): string {
  const rows = f.scenarios.flatMap((s) =>
    MODES.flatMap((m) => {
      const figures = m === 'host' ? s.host : m === 'daemons' ? s.daemons : s.goProxies;
      if (!figures) return [];
      const versus = m === 'daemons' ? s.hostOverDaemons : m === 'go proxies' ? s.hostOverGo : undefined;
      return [
        [
          `${s.name}, ${MODE_NAMES[m]}`,
          ms(figures.quietP99Us.median),
          ms(figures.loadedP99Us.median),
          x(figures.ratio),
          `${figures.echoQuietMs.toFixed(0)} / ${figures.echoLoadedMs.toFixed(0)} ms`,
          versus === undefined ? '' : x(versus),
          figures.hostile,
        ],
      ];
    }),
  );
  const lines = [
    `## Neighbours: 3 pods (64 B round trip every 10 ms, 4 MiB checked echo every 2 s) beside a 4th pod in trouble`,
    '',
    table(["the 4th pod's trouble", 'p99 quiet', 'p99 loaded', 'loaded ÷ quiet', '4 MiB echo quiet / loaded', "host's loaded p99 ÷ this row's", 'the 4th pod'], rows),
  ];
  if (f.errors.length > 0) lines.push('', `! errors the neighbours saw: ${f.errors.slice(0, 5).join('; ')}`);
  return lines.join('\n');
}

export function neighboursFigures(f: NeighboursFigures): Figure[] {
  return f.scenarios.flatMap((s) => [
    { key: `neighbours ${s.name}: host p99 loaded ÷ quiet`, value: s.host.ratio, unit: '×', better: 'lower' as const },
    { key: `neighbours ${s.name}: daemons p99 loaded ÷ quiet`, value: s.daemons.ratio, unit: '×', better: 'lower' as const },
    { key: `neighbours ${s.name}: host loaded p99 ÷ daemons`, value: s.hostOverDaemons, unit: '×', better: 'lower' as const },
    ...(s.goProxies && s.hostOverGo !== undefined
      ? [
          { key: `neighbours ${s.name}: Go proxies p99 loaded ÷ quiet`, value: s.goProxies.ratio, unit: '×', better: 'lower' as const },
          { key: `neighbours ${s.name}: host loaded p99 ÷ Go proxies`, value: s.hostOverGo, unit: '×', better: 'lower' as const },
        ]
      : []),
  ]);
}

export function neighboursTargets(f: NeighboursFigures): TargetResult[] {
  return f.scenarios.flatMap((s) => [
    { name: `neighbours, ${s.name}: p99 loaded ÷ quiet, one host`, value: s.host.ratio, op: '<=' as const, limit: RATIO_LIMIT, unit: '×', pass: s.host.ratio <= RATIO_LIMIT },
    {
      name: `neighbours, ${s.name}: host's loaded p99 ÷ beside per-pod daemons (paired by repetition)`,
      value: s.hostOverDaemons,
      op: '<=' as const,
      limit: 1,
      unit: '×',
      pass: s.hostOverDaemons <= 1,
    },
  ]);
}
