// Memory goes back: what `kata-proxy host` keeps of a pod after it ends. The real host
// (bin/kata-proxy host) and a hashicorp/yamux guest; each pod has a handle attached (as
// kata-proxy-hosted holds it) that is killed at the end, which removes the pod.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { exchange } from '../../bench/pod-memory.js';
import { controlRequest } from '../../src/host/control-client.js';
import { BIN } from '../helpers/daemon.js';
import { findGoPeer, startGoPeer } from '../helpers/go-peer.js';
import { perTest } from '../helpers/per-test.js';
import { attachRaw, control, eventually } from './helpers.js';

const t = perTest('kpm');
const GO_PEER = await findGoPeer();
const MiB = 1 << 20;
const KEPT_LIMIT = 4 * MiB;

/** Private memory (USS) of a process, bytes. */
function privateBytes(pid: number): number {
  const s = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
  return (kib('Private_Clean') + kib('Private_Dirty')) * 1024;
}

/**
 * Once no memory reclaim is due (the host runs one a second after pods stop ending, and says so in
 * /metrics) and the process stops moving (two samples 250 ms apart within 64 KiB), or after 8 s.
 */
async function settled(host: Host): Promise<number> {
  await eventually(async () => /^kata_proxy_host_memory_reclaims_due 0$/m.test((await control(host.control, 'GET', '/metrics')).text), 20_000, 'no memory reclaim due');
  let prev = privateBytes(host.pid);
  for (let i = 0; i < 32; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const now = privateBytes(host.pid);
    if (Math.abs(now - prev) < 64 * 1024) return now;
    prev = now;
  }
  return prev;
}

/** The host's memory reclaims so far that trimmed its C heap. */
async function trims(host: Host): Promise<number> {
  const text = (await control(host.control, 'GET', '/metrics')).text;
  return Number(/^kata_proxy_host_memory_reclaims_total\{outcome="trimmed"\} (\d+)$/m.exec(text)?.[1]);
}

/** A download of `bytes` from the Go guest's source service; resolves with the bytes received. */
const download = (path: string, bytes: number) => exchange(path, `source ${bytes} 1\n`);

interface Host {
  pid: number;
  control: string;
  /** One pod through its life: console, `downloads` of `bytes`, then its handle killed (it is removed). */
  pod(i: number, downloads: number, bytes: number): Promise<void>;
}

async function startHost(): Promise<Host> {
  const mux = t.tmp.socket('go');
  const guest = await startGoPeer(GO_PEER!, ['serve', '-listen', mux]);
  t.cleanups.push(() => guest.stop());
  const controlSocket = t.tmp.socket('host');
  const host: ChildProcess = spawn(BIN, ['host', '-control-socket', controlSocket, '-state-file', t.tmp.file('pods.json')], { stdio: 'ignore' });
  t.cleanups.push(() => host.kill('SIGKILL'));
  await eventually(() => controlRequest(controlSocket, 'GET', '/pods', undefined, 1000).then((r) => r.status === 200, () => false));

  const pod = async (i: number, downloads: number, bytes: number) => {
    const handle = spawn('sleep', ['60'], { stdio: 'ignore' });
    t.cleanups.push(() => handle.kill('SIGKILL'));
    const listen = t.tmp.socket(`p${i}`);
    // The guest console QEMU would serve: a few boot lines, then quiet.
    const consolePath = t.tmp.socket(`c${i}`);
    const console = net.createServer((c) => {
      c.on('error', () => {});
      c.end('boot line 1\nboot line 2\n');
    });
    await new Promise<void>((r) => console.listen(consolePath, r));
    t.cleanups.push(() => console.close());
    const body = { listenSocket: listen, muxSocket: mux, agentLogsSocket: consolePath };
    const put = await controlRequest(controlSocket, 'PUT', `/pods/p${i}?wait=serving&pid=${handle.pid}`, body, 10_000);
    expect(put.status).toBe(201);
    const link = await attachRaw(controlSocket, `p${i}`, handle.pid!);
    await eventually(() => link.text().endsWith('attached\n'));
    for (let d = 0; d < downloads; d++) expect(await download(listen, bytes)).toBe(bytes);
    handle.kill('SIGKILL');
    link.socket.destroy(); // the handle's connection ends with it
    await eventually(async () => ((await controlRequest(controlSocket, 'GET', '/pods', undefined, 1000)).body as { pods: unknown[] }).pods.length === 0);
  };
  return { pid: host.pid!, control: controlSocket, pod };
}

describe.skipIf(!GO_PEER)('kata-proxy host: memory of ended pods', () => {
  it('50 pods one after another, each with its console, requests and its handle killed: the host keeps at most 4 MiB of them', async () => {
    const host = await startHost();
    // Pods first to what any host that has run pods keeps once (code compiled, the allocator's
    // high-water mark, pools): what is measured is what the next pods add to it.
    for (let i = 0; i < 30; i++) await host.pod(i, 3, 64 * 1024);
    const before = await settled(host);
    for (let i = 30; i < 80; i++) await host.pod(i, 3, 64 * 1024);
    const after = await settled(host);
    expect(after - before).toBeLessThanOrEqual(KEPT_LIMIT);
  }, 120_000);

  // The freed read buffers of a bulk transfer are scattered through the C heap between live
  // chunks: without the host's heap trim it kept ~30 MiB of such a pod for good.
  it('a pod that carried three 256 MiB downloads: the host keeps at most 4 MiB of it, nor with 20 more pods after it', async () => {
    const host = await startHost();
    for (let i = 0; i < 10; i++) await host.pod(i, 3, 64 * 1024);
    const before = await settled(host);
    const trimsBefore = await trims(host);
    await host.pod(10, 3, 256 * MiB);
    const afterBulk = await settled(host);
    expect(afterBulk - before).toBeLessThanOrEqual(KEPT_LIMIT);
    // Given back by a trim of the C heap (what keeping it under the limit takes), and counted.
    expect(await trims(host)).toBe(trimsBefore + 1);
    for (let i = 11; i < 31; i++) await host.pod(i, 3, 64 * 1024);
    const after = await settled(host);
    expect(after - before).toBeLessThanOrEqual(KEPT_LIMIT);
  }, 120_000);
});
