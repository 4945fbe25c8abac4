// Fleet memory of host mode: N pods served by one `kata-proxy host` and held by N per-pod
// handles (bin/kata-proxy-hosted, as the Kata runtime starts them), against N per-pod daemons.
// The guests are hashicorp/yamux Go peers, not Node processes: on a real host they are VMs, and
// nothing shares the node binary's pages with the host. Memory is PSS summed over each fleet's
// processes with the pages of their executable counted once, whole (bench/proc.ts groupPss):
// what the fleet costs where it holds the only Node processes, whatever else runs meanwhile (this
// bench is one). After each pod answered an echo.
// Standalone: node dist/bench/hosted-fleet.js [pods...]   (default 20 100; prints JSON)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { controlRequest } from '../src/host/control-client.js';
import { buildGoPeer, buildGoProxy } from '../test/go-peer/build.js';
import { Child, daemonEnv, LAUNCHER, probe, REPO_ROOT, runtimeArgv, startDaemon, startGoPeer, startProxyBinary, type DaemonPaths } from './peers.js';
import { groupPss, settledSample, sleep } from './proc.js';

export const HOSTED_LAUNCHER = join(REPO_ROOT, 'bin', 'kata-proxy-hosted');

export interface FleetFigures {
  pods: number;
  /** Handles + host, bytes. */
  hosted: { handlesPss: number; hostPss: number; perHandlePss: number; perPodPss: number };
  /** Per-pod daemons, bytes (null when not measured). */
  daemons: { pss: number; perPodPss: number } | null;
  /** The Go kata-proxy's design (test/go-peer/proxy), one per pod, bytes. */
  goProxies: { pss: number; perPodPss: number };
}

async function untilServing(paths: DaemonPaths[], children: Child[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (const p of paths) {
    while (!(await probe(p.listen))) {
      if (Date.now() > deadline) {
        const logs = children.filter((c) => c.stderrTail.length > 0).map((c) => `--- ${c.name}\n${c.stderrTail.join('\n')}`);
        throw new Error(`${p.sandbox} does not serve within 60 s\n${logs.join('\n')}`);
      }
      await sleep(25);
    }
  }
}

/** One fleet of `pods` pods, both ways; the guests are sessions of one hashicorp/yamux Go peer. */
export async function measureHostedFleet(pods: number, opts: { daemons?: boolean } = {}): Promise<FleetFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'kpf-'));
  const mux = join(dir, 'guest.sock');
  const paths = Array.from({ length: pods }, (_, i): DaemonPaths => ({ listen: join(dir, `p${i}.sock`), mux, sandbox: `pod-${i}` }));
  const guests = await startGoPeer(await buildGoPeer(), mux);
  const children: Child[] = [];
  try {
    const control = join(dir, 'host.sock');
    const host = new Child('host', spawn(LAUNCHER, ['host', '-control-socket', control, '-state-file', join(dir, 'pods.json'), '-log', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'], env: daemonEnv() }));
    children.push(host);
    while (!(await controlRequest(control, 'GET', '/pods', undefined, 2000).then((r) => r.status === 200, () => false))) {
      if (!host.alive) throw new Error(`the host exited\n${host.stderrTail.join('\n')}`);
      await sleep(20);
    }
    const handles = paths.map((p) => {
      const proc = spawn(HOSTED_LAUNCHER, runtimeArgv(p), { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...daemonEnv(), KATA_PROXY_CONTROL_SOCKET: control } });
      const child = new Child(`handle ${p.sandbox}`, proc);
      children.push(child);
      return child;
    });
    await untilServing(paths, children);
    await settledSample(host.pid, { minMs: 1500, maxMs: 5000 });
    const handlesPss = groupPss(handles.map((h) => h.pid));
    const hostPss = groupPss([host.pid]);
    for (const h of handles) await h.stop();
    await host.stop();

    let daemons: FleetFigures['daemons'] = null;
    if (opts.daemons ?? true) {
      const started: Child[] = [];
      for (const p of paths) {
        const d = await startDaemon(p);
        started.push(d);
        children.push(d);
      }
      await settledSample(started[started.length - 1]!.pid, { minMs: 1500, maxMs: 5000 });
      const pss = groupPss(started.map((d) => d.pid));
      daemons = { pss, perPodPss: pss / pods };
    }
    const goBin = await buildGoProxy();
    const goProxies: Child[] = [];
    for (const p of paths) {
      const g = await startProxyBinary('go-proxy', goBin, { ...p, listen: `${p.listen}.go` });
      goProxies.push(g);
      children.push(g);
    }
    await settledSample(goProxies.at(-1)!.pid, { minMs: 1500, maxMs: 5000 });
    const goPss = groupPss(goProxies.map((g) => g.pid));
    return {
      pods,
      hosted: { handlesPss, hostPss, perHandlePss: handlesPss / pods, perPodPss: (handlesPss + hostPss) / pods },
      daemons,
      goProxies: { pss: goPss, perPodPss: goPss / pods },
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await guests.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const counts = process.argv.slice(2).map(Number);
  const mib = (b: number) => Math.round((b / 1048576) * 1000) / 1000;
  for (const n of counts.length > 0 ? counts : [20, 100]) {
    const f = await measureHostedFleet(n);
    console.log(
      JSON.stringify({
        pods: f.pods,
        hostedMiB: { handles: mib(f.hosted.handlesPss), host: mib(f.hosted.hostPss), perHandle: mib(f.hosted.perHandlePss), perPod: mib(f.hosted.perPodPss) },
        daemonsMiB: f.daemons && { total: mib(f.daemons.pss), perPod: mib(f.daemons.perPodPss) },
        goProxiesMiB: { total: mib(f.goProxies.pss), perPod: mib(f.goProxies.perPodPss) },
      }),
    );
  }
}
