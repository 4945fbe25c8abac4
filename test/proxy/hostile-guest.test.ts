// A Proxy (in process, real sockets) against a raw-frame guest that does what a Kata agent never
// does: frames for streams that do not exist, streams of its own, GoAway while clients connect.
import type net from 'node:net';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { connectWithRetry } from '../../src/channel/unix-socket.js';
import { listenOnPath } from '../../src/proxy/listener.js';
import { LogThrottle } from '../../src/proxy/log-throttle.js';
import { Proxy } from '../../src/proxy/proxy.js';
import { connect } from '../helpers/clients.js';
import { F, T, dataFrame, encodeFrame, listenRaw, windowUpdate, type RawPeer } from '../helpers/frames.js';
import { perTest } from '../helpers/per-test.js';
import { until } from '../helpers/yamux-pair.js';

const per = perTest('kph');
const { cleanups } = per;

interface Line {
  level: number;
  msg: string;
  [key: string]: unknown;
}

function memoryLogger(level = 'debug') {
  const lines: Line[] = [];
  const logger = pino({ level }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  return { logger, lines };
}

async function podWithRawGuest() {
  const paths = { mux: per.tmp.socket('kata'), listen: per.tmp.socket('proxy') };
  const raw = await listenRaw(paths.mux);
  cleanups.push(() => raw.close());
  const { logger, lines } = memoryLogger();
  const proxy = new Proxy({
    server: await listenOnPath(paths.listen, 0o660),
    logger,
    heartbeatMs: 0,
    openGuestChannel: (signal) => connectWithRetry(paths.mux, { timeoutMs: 10_000, signal }),
  });
  cleanups.push(() => proxy.stop());
  const [guest] = await Promise.all([raw.next(), proxy.start()]);
  return { paths, proxy, guest, lines };
}

/** A client whose stream the guest has accepted. */
async function acceptedClient(listen: string, guest: RawPeer, id: number): Promise<net.Socket> {
  const client = await connect(listen);
  client.on('error', () => {});
  cleanups.push(() => client.destroy());
  await guest.waitFor((f) => f.streamId === id && (f.flags & F.SYN) !== 0);
  guest.send(windowUpdate(id, F.ACK));
  return client;
}

const count = (lines: Line[], msg: string) => lines.filter((l) => l.msg === msg);

describe('a hostile guest costs a bounded number of log lines (at debug)', () => {
  it('5,000 Data frames for unknown streams: 5 lines, then their count', async () => {
    const { proxy, guest, lines } = await podWithRawGuest();
    const before = lines.length;
    guest.send(...Array.from({ length: 5000 }, (_, i) => dataFrame(1001 + 2 * i, 'x')));
    await until(() => count(lines, 'frame for unknown stream discarded').length === 5);
    guest.send(encodeFrame(T.Ping, F.SYN, 0, 42));
    await guest.waitFor((f) => f.type === T.Ping && f.length === 42);
    expect(lines.length - before).toBe(5);
    await proxy.stop();
    const discarded = count(lines, 'frame for unknown stream discarded');
    expect(discarded).toHaveLength(6);
    expect(discarded[5]).toMatchObject({ suppressed: 4995, component: 'yamux' });
  });

  it('33,000 SYNs: 5 lines, then the session ends naming the cause, after 64 refusals', async () => {
    const { proxy, guest, lines } = await podWithRawGuest();
    guest.send(...Array.from({ length: 33_000 }, (_, i) => windowUpdate(2 + 2 * i, F.SYN)));
    const end = await proxy.whenEnded();
    expect(end.reason).toBe('guest-ended');
    expect(end.reason === 'guest-ended' && end.error?.message).toBe(
      'yamux protocol error: peer opened 65 streams on a session that accepts none',
    );
    const goAway = await guest.waitFor((f) => f.type === T.GoAway);
    expect(goAway.length).toBe(1); // protocol error
    const refused = count(lines, 'inbound stream refused');
    expect(refused).toHaveLength(6);
    expect(refused[5]).toMatchObject({ suppressed: 59 });
    expect(lines.length).toBeLessThan(15);
    expect(proxy.diagnostics().session).toMatchObject({ rejected: 64 });
  });
});

describe('GoAway from the guest', () => {
  it('open streams finish, new clients are refused and counted, then the proxy ends (guest-ended)', async () => {
    const { paths, proxy, guest, lines } = await podWithRawGuest();
    const first = await acceptedClient(paths.listen, guest, 1);
    const received: Buffer[] = [];
    first.on('data', (d: Buffer) => received.push(d));
    guest.send(encodeFrame(T.GoAway, 0, 0, 0));
    await until(() => count(lines, 'guest sent GoAway; new clients are refused until the open streams finish').length === 1);

    const late = await Promise.all(Array.from({ length: 12 }, () => connect(paths.listen)));
    cleanups.push(() => late.forEach((c) => c.destroy()));
    await Promise.all(late.map((c) => new Promise((r) => c.on('error', r).on('end', r).resume())));
    expect(proxy.diagnostics().clientsRefused).toBe(12);
    expect(count(lines, 'client refused: guest sent GoAway')).toHaveLength(5);
    expect(guest.frames.filter((f) => f.flags & F.SYN)).toHaveLength(1);

    // The stream open before GoAway still carries data both ways.
    first.write('request');
    await guest.waitFor((f) => f.streamId === 1 && f.type === T.Data);
    guest.send(dataFrame(1, 'reply', F.FIN));
    await until(() => Buffer.concat(received).toString() === 'reply');
    expect(proxy.state).toBe('serving');
    const end = proxy.whenEnded();
    first.end();
    await guest.waitFor((f) => f.streamId === 1 && (f.flags & F.FIN) !== 0);
    const result = await end;
    expect(result.reason).toBe('guest-ended');
    expect(result.reason === 'guest-ended' && result.error?.message).toBe('guest sent GoAway; all streams finished');
    expect(count(lines, 'guest sent GoAway; all streams finished')[0]).toMatchObject({ clientsRefused: 12 });
    expect(count(lines, 'client refused: guest sent GoAway')[5]).toMatchObject({ suppressed: 7 });
  });

  it('with no stream open, GoAway ends the proxy at once', async () => {
    const { proxy, guest } = await podWithRawGuest();
    guest.send(encodeFrame(T.GoAway, 0, 0, 0));
    expect((await proxy.whenEnded()).reason).toBe('guest-ended');
  });
});

describe('LogThrottle', () => {
  it('per message: the first lines, then one count per interval; a quiet interval starts afresh', async () => {
    const { logger, lines } = memoryLogger();
    const throttle = new LogThrottle({ burst: 3, intervalMs: 100 });
    cleanups.push(() => throttle.flush());
    for (let i = 0; i < 1000; i++) throttle.write(logger, 'debug', 'a', { i });
    throttle.write(logger, 'warn', 'b');
    expect(lines.map((l) => `${l.msg}${l.i ?? ''}`)).toEqual(['a0', 'a1', 'a2', 'b']);
    await until(() => lines.length === 5);
    expect(lines[4]).toMatchObject({ msg: 'a', suppressed: 997, level: 20 });
    // Sustained: still no fresh lines, only counts.
    for (let i = 0; i < 10; i++) throttle.write(logger, 'debug', 'a');
    await until(() => lines.length === 6);
    expect(lines[5]).toMatchObject({ msg: 'a', suppressed: 10 });
    // Quiet for a whole interval: forgotten, so the next one is written again.
    await new Promise((r) => setTimeout(r, 350));
    throttle.write(logger, 'debug', 'a', { i: 'again' });
    expect(lines.at(-1)).toMatchObject({ msg: 'a', i: 'again' });
    expect(lines).toHaveLength(7);
  });

  it('writes nothing and counts nothing for a level that is off', () => {
    const { logger, lines } = memoryLogger('warn');
    const throttle = new LogThrottle();
    for (let i = 0; i < 100; i++) throttle.write(logger, 'debug', 'a');
    throttle.flush();
    expect(lines).toHaveLength(0);
  });
});
