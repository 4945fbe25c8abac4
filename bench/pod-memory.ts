// What `kata-proxy host` spends on its pods' memory, measured as the runtime uses it:
// every pod with a hashicorp/yamux guest (one Go peer serves them all: guests are not Node
// processes), a console socket, a handle's attach connection (kept open by this process, as
// kata-proxy-hosted keeps it) and one finished connection.
// - live: the host's private memory (USS) with 1 pod and with 100, per extra pod;
// - ended: what the host keeps after a pod that carried three 1 GiB downloads (64 MiB with --quick) is removed by its
//   handle going away, and after 50 more pods with a few requests each, one after another.
import net from 'node:net';
import { join } from 'node:path';
import { controlRequest } from '../src/host/control-client.js';
import { HostProcess } from './host.js';
import { settledSample, sleep } from './proc.js';
import { table, type Figure, type TargetResult } from './report-parts.js';

const MiB = 1 << 20;
const LIVE_LIMIT = 64 * 1024;
const KEPT_LIMIT = 4 * MiB;

export interface PodMemoryFigures {
  live: { pods: number; onePodUss: number; allPodsUss: number; perPodUss: number };
  ended: { beforeUss: number; afterBulkUss: number; after50Uss: number; bulkBytes: number };
}

interface Console {
  path: string;
  close(): void;
}

/** A console socket as QEMU serves it: a few boot lines, then quiet. */
async function consoleAt(path: string): Promise<Console> {
  const clients = new Set<net.Socket>();
  const server = net.createServer((c) => {
    clients.add(c);
    c.on('error', () => {});
    c.write('boot line 1\nboot line 2\n');
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    path,
    close: () => {
      for (const c of clients) c.destroy();
      server.close();
    },
  };
}

/** Sends `line` on a new connection, half-closes, and resolves with the bytes it gets back. */
export function exchange(path: string, line: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    let got = 0;
    s.on('data', (c: Buffer) => (got += c.length));
    s.once('end', () => {
      s.end();
      resolve(got);
    });
    s.once('error', reject);
    s.end(line);
  });
}

/** One pod as the runtime has it; `end()` drops its handle's connection (the host removes it). */
async function addPod(host: HostProcess, dir: string, goMux: string, id: string): Promise<{ listen: string; end(): Promise<void> }> {
  const listen = join(dir, `${id}.sock`);
  const console = await consoleAt(join(dir, `${id}-console.sock`));
  const body = { listenSocket: listen, muxSocket: goMux, agentLogsSocket: console.path };
  // The handle's pid is this process (alive throughout); its attach connection is what counts.
  const put = await controlRequest(host.control, 'PUT', `/pods/${id}?wait=serving&pid=${process.pid}`, body, 20_000);
  if (put.status !== 201) throw new Error(`PUT ${id}: ${put.status} ${JSON.stringify(put.body)}`);
  const attach = net.connect(host.control);
  attach.on('error', () => {});
  await new Promise((r) => attach.once('connect', r));
  attach.write(`GET /pods/${id}/attach?pid=${process.pid} HTTP/1.1\r\nHost: kata-proxy\r\n\r\n`);
  await new Promise((r) => attach.once('data', r));
  await exchange(listen, 'echo\nhello');
  return {
    listen,
    end: async () => {
      attach.destroy();
      for (;;) {
        const r = await controlRequest(host.control, 'GET', '/pods', undefined, 5000);
        if (!(r.body as { pods: { id: string }[] }).pods.some((p) => p.id === id)) break;
        await sleep(10);
      }
      console.close();
    },
  };
}

export async function measurePodMemory(o: { dir: string; goMux: string; quick: boolean }): Promise<PodMemoryFigures> {
  const settle = o.quick ? { minMs: 300, maxMs: 2000 } : { minMs: 1500, maxMs: 5000 };
  const livePods = o.quick ? 20 : 100;
  const later = o.quick ? 10 : 50;
  const bulk = o.quick ? 64 * MiB : 1024 * MiB;
  const host = await HostProcess.start(o.dir);
  try {
    const live = [await addPod(host, o.dir, o.goMux, 'live0')];
    const onePodUss = (await settledSample(host.pid, settle))!.uss;
    for (let i = 1; i < livePods; i++) live.push(await addPod(host, o.dir, o.goMux, `live${i}`));
    const allPodsUss = (await settledSample(host.pid, settle))!.uss;
    for (const p of live) await p.end();

    // After the quiet of the removals (the host collects a second after the last pod ended).
    const beforeUss = (await settledSample(host.pid, { ...settle, minMs: settle.minMs + 1500 }))!.uss;
    const heavy = await addPod(host, o.dir, o.goMux, 'bulk');
    for (let i = 0; i < 3; i++) {
      const got = await exchange(heavy.listen, `source ${bulk} 1\n`);
      if (got !== bulk) throw new Error(`download: ${got} of ${bulk} bytes`);
    }
    await heavy.end();
    const afterBulkUss = (await settledSample(host.pid, { ...settle, minMs: settle.minMs + 1500 }))!.uss;
    for (let i = 0; i < later; i++) {
      const p = await addPod(host, o.dir, o.goMux, `later${i}`);
      for (let r = 0; r < 3; r++) await exchange(p.listen, 'echo\nhello');
      await p.end();
    }
    const after50Uss = (await settledSample(host.pid, { ...settle, minMs: settle.minMs + 1500 }))!.uss;
    return {
      live: { pods: livePods, onePodUss, allPodsUss, perPodUss: (allPodsUss - onePodUss) / (livePods - 1) },
      ended: { beforeUss, afterBulkUss, after50Uss, bulkBytes: 3 * bulk },
    };
  } finally {
    await host.stop();
  }
}

const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`;

export function podMemorySection(f: PodMemoryFigures): string {
  return [
    '## Host memory per pod (hashicorp/yamux guests, a console and a handle connection each)',
    '',
    table(
      ['', 'host USS', 'per pod / kept'],
      [
        [`1 pod → ${f.live.pods} pods, live`, `${mib(f.live.onePodUss)} → ${mib(f.live.allPodsUss)}`, kib(f.live.perPodUss)],
        [`a pod after ${mib(f.ended.bulkBytes)} of downloads, ended`, `${mib(f.ended.beforeUss)} → ${mib(f.ended.afterBulkUss)}`, mib(f.ended.afterBulkUss - f.ended.beforeUss)],
        ['and after 50 more pods, one after another', mib(f.ended.after50Uss), mib(f.ended.after50Uss - f.ended.beforeUss)],
      ],
    ),
  ].join('\n');
}

export function podMemoryFigures(f: PodMemoryFigures): Figure[] {
  return [
    { key: 'host: USS per live pod (Go guest, console, handle)', value: f.live.perPodUss / 1024, unit: 'KiB', better: 'lower' },
    { key: 'host: USS kept after an ended bulk pod', value: (f.ended.afterBulkUss - f.ended.beforeUss) / MiB, unit: 'MiB', better: 'lower' },
  ];
}

export function podMemoryTargets(f: PodMemoryFigures): TargetResult[] {
  const bulkKept = f.ended.afterBulkUss - f.ended.beforeUss;
  const laterKept = f.ended.after50Uss - f.ended.beforeUss;
  return [
    { name: 'host: USS per live pod', value: f.live.perPodUss / 1024, op: '<=', limit: LIVE_LIMIT / 1024, unit: 'KiB', pass: f.live.perPodUss <= LIVE_LIMIT },
    { name: `host: USS kept after a pod that carried ${mib(f.ended.bulkBytes)} ended`, value: bulkKept / MiB, op: '<=', limit: KEPT_LIMIT / MiB, unit: 'MiB', pass: bulkKept <= KEPT_LIMIT },
    { name: 'host: USS kept after 50 more pods (≤ what one kept)', value: laterKept / MiB, op: '<=', limit: Math.max(bulkKept, 0) / MiB, unit: 'MiB', pass: laterKept <= Math.max(bulkKept, 0) + 256 * 1024 },
  ];
}
