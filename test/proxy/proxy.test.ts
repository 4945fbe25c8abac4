import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { connectWithRetry } from '../../src/channel/unix-socket.js';
import { listenOnPath, ListenSocketError } from '../../src/proxy/listener.js';
import { Proxy } from '../../src/proxy/proxy.js';
import { SimulatedGuest } from '../../src/sim/guest.js';
import { connect, echoChecked, request, sha256 } from '../helpers/clients.js';
import { until } from '../helpers/yamux-pair.js';
import { perTest } from '../helpers/per-test.js';

const silent = pino({ level: 'silent' });
const { cleanups } = perTest();

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kp-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function podWithGuest(options: { startGuest?: boolean } = {}) {
  const dir = tempDir();
  const paths = { mux: path.join(dir, 'kata.sock'), listen: path.join(dir, 'proxy.sock') };
  const guest = new SimulatedGuest({ muxSocket: paths.mux });
  if (options.startGuest !== false) await guest.start();
  cleanups.push(() => guest.stop());
  const server = await listenOnPath(paths.listen, 0o660);
  const proxy = new Proxy({
    server,
    logger: silent,
    openGuestChannel: (signal) => connectWithRetry(paths.mux, { timeoutMs: 10_000, signal }),
  });
  cleanups.push(() => proxy.stop());
  return { dir, paths, guest, proxy };
}

describe('Proxy (in process, real sockets, simulated guest)', () => {
  it('carries 200 concurrent connections, every byte checked, and leaves nothing behind', async () => {
    const { paths, proxy } = await podWithGuest();
    await proxy.start();
    const sizes = Array.from({ length: 200 }, (_, i) => (i * 7919) % 300_000);
    const results = await Promise.all(sizes.map((size) => echoChecked(paths.listen, size)));
    expect(results.every(Boolean)).toBe(true);
    await until(() => proxy.clientCount === 0 && proxy.streamCount === 0);
  });

  it('queues connections made before the guest answers', async () => {
    const { paths, proxy, guest } = await podWithGuest({ startGuest: false });
    const starting = proxy.start();
    const early = echoChecked(paths.listen, 1000);
    await new Promise((r) => setTimeout(r, 200));
    await guest.start();
    await starting;
    expect(await early).toBe(true);
  });

  it('forwards half-close both ways: the client shuts down writing and still reads', async () => {
    const { paths, proxy } = await podWithGuest();
    await proxy.start();
    const data = Buffer.alloc(500_000, 3);
    const reply = (await request(paths.listen, 'sink', data)).toString();
    expect(reply).toBe(`${sha256(data)} ${data.length}\n`);
  });

  it('FIN from the guest gives the client EOF while the client can still write', async () => {
    const { paths, proxy } = await podWithGuest();
    await proxy.start();
    const socket = await connect(paths.listen);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise((r) => socket.once('end', r));
    socket.write('source 1000\n');
    await ended;
    expect(Buffer.concat(chunks).length).toBe(1000);
    expect(socket.writable).toBe(true);
    socket.end('trailing bytes after EOF');
    await new Promise((r) => socket.once('close', r));
  });

  it('1,000 sequential and 500 parallel connections: counts return to zero', async () => {
    const { paths, proxy, guest } = await podWithGuest();
    await proxy.start();
    for (let i = 0; i < 1000; i++) await request(paths.listen, 'echo', Buffer.from('x'));
    await Promise.all(Array.from({ length: 500 }, () => request(paths.listen, 'echo', Buffer.from('y'))));
    await until(() => proxy.clientCount === 0 && proxy.streamCount === 0);
    expect(guest.streamsServed).toBe(1500);
  });

  it('a client killed mid-transfer resets its stream while others continue', async () => {
    const { paths, proxy } = await podWithGuest();
    await proxy.start();
    const victim = await connect(paths.listen);
    victim.on('error', () => {});
    victim.write('echo\n');
    victim.write(Buffer.alloc(200_000));
    const others = Promise.all(Array.from({ length: 20 }, () => echoChecked(paths.listen, 100_000)));
    victim.destroy();
    expect((await others).every(Boolean)).toBe(true);
    await until(() => proxy.clientCount === 0 && proxy.streamCount === 0);
  });

  it('the guest going away ends the proxy and every client sees EOF or a reset', async () => {
    const { paths, proxy, guest } = await podWithGuest();
    await proxy.start();
    const clients = await Promise.all(Array.from({ length: 5 }, () => connect(paths.listen)));
    // Each client must see EOF or an error (these half-open-capable clients do not close by themselves).
    const closed = clients.map((c) => new Promise((r) => c.once('error', r).once('end', r).resume()));
    for (const c of clients) c.write('echo\nping');
    await until(() => proxy.streamCount === 5);
    const end = proxy.whenEnded();
    const t0 = Date.now();
    await guest.stop();
    expect((await end).reason).toBe('guest-ended');
    await Promise.all(closed);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('stop() with live streams ends cleanly', async () => {
    const { paths, proxy } = await podWithGuest();
    await proxy.start();
    const client = await connect(paths.listen);
    client.on('error', () => {});
    client.resume();
    client.write('echo\nhello');
    await until(() => proxy.streamCount === 1);
    const closed = new Promise((r) => client.once('close', r));
    client.end();
    await proxy.stop();
    expect((await proxy.whenEnded()).reason).toBe('stopped');
    await closed;
  });

  it('several pods in one process stay apart: traffic, counts and the end of one guest', async () => {
    const pods = await Promise.all([podWithGuest(), podWithGuest(), podWithGuest()]);
    await Promise.all(pods.map((p) => p.proxy.start()));
    const perPod = [30, 50, 70];
    const results = await Promise.all(
      pods.flatMap((p, i) => Array.from({ length: perPod[i]! }, (_, k) => echoChecked(p.paths.listen, 1000 + k * 997))),
    );
    expect(results.every(Boolean)).toBe(true);
    expect(pods.map((p) => p.guest.streamsServed)).toEqual(perPod);

    const [a, b, c] = pods as [(typeof pods)[0], (typeof pods)[0], (typeof pods)[0]];
    const liveOnA = await connect(a.paths.listen);
    liveOnA.on('error', () => {});
    liveOnA.write('echo\nstill here');
    await until(() => a.proxy.streamCount === 1);
    await b.guest.stop();
    expect((await b.proxy.whenEnded()).reason).toBe('guest-ended');
    expect([a.proxy.state, c.proxy.state]).toEqual(['serving', 'serving']);
    expect(await echoChecked(c.paths.listen, 50_000)).toBe(true);
    const chunks: Buffer[] = [];
    liveOnA.on('data', (d: Buffer) => chunks.push(d));
    const ended = new Promise((resolve) => liveOnA.once('end', resolve));
    liveOnA.end();
    await ended;
    expect(Buffer.concat(chunks).toString()).toBe('still here');
  });
});

describe('listen socket', () => {
  it('replaces a stale socket file, refuses a live one and a non-socket path', async () => {
    const dir = tempDir();
    const stale = path.join(dir, 'stale.sock');
    const s1 = net.createServer();
    await new Promise<void>((r) => s1.listen(stale, r));
    // Simulate a crashed owner: the file stays, nothing listens.
    (s1 as unknown as { _handle: { close(): void } | null })._handle?.close();
    const server = await listenOnPath(stale, 0o660);
    cleanups.push(() => void server.close());
    await expect(listenOnPath(stale, 0o660)).rejects.toThrow(ListenSocketError);
    const file = path.join(dir, 'file');
    writeFileSync(file, 'x');
    await expect(listenOnPath(file, 0o660)).rejects.toThrow(/not a socket/);
  });

  it('gets exactly the configured mode whatever the umask', async () => {
    const dir = tempDir();
    const previous = process.umask(0);
    try {
      const p = path.join(dir, 'p.sock');
      const server = await listenOnPath(p, 0o660);
      cleanups.push(() => void server.close());
      const { statSync } = await import('node:fs');
      expect(statSync(p).mode & 0o777).toBe(0o660);
    } finally {
      process.umask(previous);
    }
  });
});
