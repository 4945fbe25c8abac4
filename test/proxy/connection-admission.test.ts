// A pod's rate of new connections (host mode's -pod-conn-rate): a Proxy in process with real
// sockets against a raw-frame guest, which shows exactly when each client got its stream.
import type net from 'node:net';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { connectWithRetry } from '../../src/channel/unix-socket.js';
import type { ConnectionRate } from '../../src/proxy/connection-admission.js';
import { listenOnPath } from '../../src/proxy/listener.js';
import { Proxy } from '../../src/proxy/proxy.js';
import { connect } from '../helpers/clients.js';
import { F, listenRaw, windowUpdate, type RawPeer } from '../helpers/frames.js';
import { perTest } from '../helpers/per-test.js';
import { until } from '../helpers/yamux-pair.js';

const per = perTest('kpa');
const { cleanups } = per;

async function proxyWithRate(connectionRate: ConnectionRate): Promise<{ proxy: Proxy; guest: RawPeer; listen: string }> {
  const mux = per.tmp.socket('kata');
  const listen = per.tmp.socket('proxy');
  const raw = await listenRaw(mux);
  cleanups.push(() => raw.close());
  const proxy = new Proxy({
    server: await listenOnPath(listen, 0o660),
    logger: pino({ level: 'silent' }),
    heartbeatMs: 0,
    drainTimeoutMs: 200,
    connectionRate,
    openGuestChannel: (signal) => connectWithRetry(mux, { timeoutMs: 10_000, signal }),
  });
  cleanups.push(() => proxy.stop());
  const [guest] = await Promise.all([raw.next(), proxy.start()]);
  return { proxy, guest, listen };
}

/** A connected client, and when it reads EOF. */
async function client(listen: string): Promise<{ socket: net.Socket; eof: Promise<void> }> {
  const c = await connect(listen);
  c.on('error', () => {});
  cleanups.push(() => c.destroy());
  const eof = new Promise<void>((r) => c.once('end', () => r()));
  c.resume();
  return { socket: c, eof };
}

const syns = (guest: RawPeer) => guest.parser.frames.filter((f) => (f.flags & F.SYN) !== 0).map((f) => f.streamId);

describe('the connection rate of a pod', () => {
  it('clients over the rate wait, in the order they came, and every one is served', async () => {
    // 2 at once, then 2 a second: six clients connected in a row leave four waiting.
    const { proxy, guest, listen } = await proxyWithRate({ perSecond: 2, burst: 2, maxWaiting: 16 });
    for (let i = 0; i < 6; i++) (await client(listen)).socket.write(`client ${i}\n`);
    await until(() => proxy.diagnostics().clientsDelayed > 0);
    expect(proxy.diagnostics().clientsWaiting).toBeGreaterThan(0);
    await until(() => syns(guest).length === 6, 10_000);
    for (const id of syns(guest)) guest.send(windowUpdate(id, F.ACK));
    // Each client's first bytes went out on the stream it was given: ids rise with the order of arrival.
    await until(() => guest.parser.frames.filter((f) => f.payload.length > 0).length === 6);
    const order = guest.parser.frames.filter((f) => f.payload.length > 0).sort((a, b) => a.streamId - b.streamId).map((f) => f.payload.toString());
    expect(order).toEqual([0, 1, 2, 3, 4, 5].map((i) => `client ${i}\n`));
    expect(proxy.diagnostics()).toMatchObject({ clientsWaiting: 0, connectionsServed: 6, clientsRefused: 0 });
    expect(proxy.diagnostics().clientsDelayed).toBeGreaterThanOrEqual(3);
  }, 20_000);

  it('past the clients that may wait, the next are closed at once and counted; a stop closes the waiting unserved', async () => {
    // One token, refilled only after two seconds: one client served, two wait, the rest refused.
    const { proxy, guest, listen } = await proxyWithRate({ perSecond: 0.5, burst: 1, maxWaiting: 2 });
    const closed: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) closed.push((await client(listen)).eof);
    await Promise.all(closed.slice(3));
    expect(proxy.diagnostics()).toMatchObject({ connectionsServed: 1, clientsWaiting: 2, clientsRefused: 2 });
    expect(syns(guest)).toEqual([1]);
    guest.send(windowUpdate(1, F.ACK));
    await proxy.stop();
    await Promise.all(closed);
    expect(syns(guest)).toEqual([1]);
  });
});
