// Host-mode fixtures: requests on a control socket, a host in this process, a host as a child
// process (the real binary), and many simulated guests in one other process.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { serveControl, type ControlServer } from '../../src/host/control-server.js';
import { Host } from '../../src/host/host.js';
import { StateFile } from '../../src/host/state-file.js';
import { createLoggers } from '../../src/log/logger.js';
import { request } from '../helpers/clients.js';
import { REPO_ROOT } from '../helpers/go-peer.js';
import type { TempDir } from '../helpers/tmp.js';

export interface Reply {
  status: number;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: http.IncomingHttpHeaders;
}

export function control(socketPath: string, method: string, path: string, body?: string | object): Promise<Reply> {
  const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, method, path, headers: data === undefined ? {} : { 'Content-Length': Buffer.byteLength(data) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let json: unknown = null;
          try {
            json = JSON.parse(text);
          } catch {
            // not JSON (metrics)
          }
          resolve({ status: res.statusCode ?? 0, text, json, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** Settings for a pod whose listen socket and guest socket are in `dir`. */
export function podBody(dir: TempDir, name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { listenSocket: `unix://${dir.socket(`p-${name}`)}`, muxSocket: dir.socket(`g-${name}`), ...extra };
}

export interface InProcessHost {
  host: Host;
  socket: string;
  stateFile: string;
  records: string[];
  close(): Promise<void>;
}

/**
 * A Host and its control server in this process; log records (JSON) are kept in `records`.
 * `podThreads`: pods on that many threads (0: on this thread); `rebalanceMs`, `busyNice`: Host's, 0: off.
 */
export async function inProcessHost(dir: TempDir, podThreads = 0, rebalanceMs = 0, busyNice = 0): Promise<InProcessHost> {
  const records: string[] = [];
  const loggers = createLoggers({ level: 'info', format: 'json', sink: 'stderr', stderr: { write: (l: string) => records.push(l) } });
  const stateFile = dir.file('pods.json');
  const host = new Host({ loggers, stateFile: new StateFile(stateFile), handleCheckMs: 200, podThreads: { count: podThreads, log: { level: 'info', format: 'json' }, busyNice }, rebalanceMs });
  const socket = dir.socket('host');
  const server: ControlServer = await serveControl(host, { path: socket }, loggers.proxy);
  return {
    host,
    socket,
    stateFile,
    records,
    close: async () => {
      await server.close();
      await host.close();
    },
  };
}

/**
 * Keeps a pod thread busy: two uploads at a time to the guest's counting sink (`discard`), without
 * pause, until `stop()` (which may be called again): the bytes the guest counted. Uploads, because
 * the pod thread is then the slowest of the three parties (its loop 0.82–0.87 busy on 2 cores); a
 * download that the client hashes keeps it ~0.45 busy, under the host's BUSY of 0.5, since the
 * client is then slower than the proxy.
 */
export function busyUploads(path: string): { stop(): Promise<number> } {
  const data = Buffer.alloc(64 * 1024 * 1024, 0x5a);
  let going = true;
  let bytes = 0;
  const one = async () => {
    while (going) bytes += Number((await request(path, 'discard', data)).toString());
  };
  const loops = Promise.all([one(), one()]);
  let stopped: Promise<number> | null = null;
  return {
    stop: () =>
      (stopped ??= (async () => {
        going = false;
        await loops;
        return bytes;
      })()),
  };
}

/** Polls until `check` returns a value other than undefined/false. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Simulated guests in one child process (as QEMU processes would be), one per mux socket path.
 * `node -e` on the built sources: the test suite runs after `npm run build`.
 */
export async function guestFarm(muxSockets: string[]): Promise<{ proc: ChildProcess; stop(): Promise<void> }> {
  const script = `
    import { SimulatedGuest } from ${JSON.stringify(join(REPO_ROOT, 'dist/src/sim/guest.js'))};
    const paths = JSON.parse(process.argv[1]);
    await Promise.all(paths.map((p) => new SimulatedGuest({ muxSocket: p }).start()));
    process.stdout.write('ready\\n');
    process.stdin.resume();
    process.stdin.on('end', () => process.exit(0));`;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(muxSockets)], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', () => resolve());
    proc.once('exit', (code) => reject(new Error(`guest farm exited with ${code}`)));
  });
  return {
    proc,
    stop: async () => {
      if (proc.exitCode !== null) return;
      proc.kill('SIGKILL');
      await new Promise((r) => proc.once('exit', r));
    },
  };
}

/**
 * A per-pod handle as issue 10's bin/kata-proxy-hosted holds it: GET /pods/ID/attach?pid=N on
 * a raw connection, everything the host writes kept in `text`.
 */
export async function attachRaw(socketPath: string, id: string, pid: number): Promise<{ socket: net.Socket; text: () => string; closed: Promise<void> }> {
  const socket = net.connect(socketPath);
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (c: string) => (text += c));
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise((r) => socket.once('connect', r));
  socket.write(`GET /pods/${id}/attach?pid=${pid} HTTP/1.1\r\nHost: kata-proxy\r\n\r\n`);
  return { socket, text: () => text, closed };
}
