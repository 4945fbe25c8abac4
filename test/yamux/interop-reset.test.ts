// RST both ways with hashicorp/yamux. hashicorp df201c7 has no Stream.Reset(); it sends RST
// only for a SYN beyond its accept backlog (or after its own GoAway), so that is what we provoke.
import { describe, expect, it } from 'vitest';
import { StreamResetError } from '../../src/yamux/index.js';
import { findGoPeer, startGoPeer } from '../helpers/go-peer.js';
import { ByteReader, echoExchange, writeChunk, writeSource } from '../helpers/services.js';
import { connectSession, waitUntil } from '../helpers/yamux-sessions.js';
import { perTest } from '../helpers/per-test.js';

const GO_PEER = await findGoPeer();

const fx = perTest('kpr');
const { cleanups } = fx;

async function goAndSession(args: string[], rejectInbound = false) {
  const path = fx.tmp.socket('go');
  const go = await startGoPeer(GO_PEER!, ['serve', '-listen', path, ...args]);
  cleanups.push(() => go.stop());
  const session = await connectSession(path, { role: 'client', config: { enableKeepAlive: false }, rejectInbound });
  cleanups.push(() => session.destroy());
  await go.waitForSessions();
  return { go, session };
}

function streamError(stream: NodeJS.EventEmitter): Promise<Error> {
  return new Promise((resolve) => stream.once('error', resolve));
}

describe.skipIf(!GO_PEER)('RST with hashicorp/yamux', () => {
  it('Go resets a stream beyond its accept backlog; the stream before it still works', async () => {
    const { go, session } = await goAndSession(['-backlog', '1', '-accept=false']);
    const first = session.open();
    const firstDone = echoExchange(first, 100_000, 1);
    firstDone.catch(() => {}); // awaited below; do not let an early failure go unhandled
    const second = session.open();
    const err = await streamError(second);
    expect(err).toBeInstanceOf(StreamResetError);
    expect((err as StreamResetError).code).toBe('ERR_YAMUX_STREAM_RESET');
    expect(second.stats().state).toBe('reset');
    await go.waitFor((e) => e.event === 'log' && e.msg === '[WARN] yamux: backlog exceeded, forcing connection reset');
    await go.request('accept', 'accepting');
    await firstDone;
    expect(session.closed).toBe(false);
    expect(go.errorLogs()).toEqual([]);
  });

  it('we reset a stream the Go side is reading: it sees "connection reset", the session lives on', async () => {
    const { go, session } = await goAndSession([]);
    const stream = session.open();
    stream.on('error', () => {});
    await writeChunk(stream, Buffer.from('sink\n'));
    await writeSource(stream, 400_000, 3);
    // More than a window went out: the Go service is reading (its Read fails on RST even with
    // data buffered, so a reset before it read the service line would look different).
    await waitUntil(() => stream.stats().bytesOut >= 400_005, 'the data left');
    stream.reset();
    const ev = await go.waitFor((e) => e.event === 'stream' && e.stream === stream.id);
    expect(ev).toMatchObject({ service: 'sink', err: 'connection reset' });
    expect(await session.ping()).toBeGreaterThanOrEqual(0);
    await echoExchange(session.open(), 50_000, 4);
    expect(go.errorLogs()).toEqual([]);
    expect(go.sessionEnds()).toEqual([]);
  });

  it('we reset a stream the Go side is writing into (blocked on our window)', async () => {
    const { go, session } = await goAndSession([]);
    const stream = session.open();
    stream.on('error', () => {});
    const reader = new ByteReader(stream);
    await writeChunk(stream, Buffer.from('source 16000000 7\n'));
    const first = await reader.chunk();
    expect(first?.length).toBeGreaterThan(0);
    await waitUntil(() => stream.stats().bytesIn >= 256 * 1024, 'the window is used up');
    stream.reset();
    const ev = await go.waitFor((e) => e.event === 'stream' && e.stream === stream.id);
    expect(ev).toMatchObject({ service: 'source', err: 'connection reset' });
    expect(Number(ev.out)).toBeLessThan(16_000_000);
    await echoExchange(session.open(), 10_000, 5);
    expect(go.errorLogs()).toEqual([]);
  });

  it('a session with rejectInbound answers the Go side\'s SYN with RST', async () => {
    const { go, session } = await goAndSession([], true);
    const ev = await go.request('open echo 1000 1', 'open-result');
    expect(String(ev.err)).toMatch(/connection reset/);
    expect(session.stats().rejected).toBe(1);
    expect(session.streamCount).toBe(0);
    await echoExchange(session.open(), 1000, 2);
    expect(go.errorLogs()).toEqual([]);
  });
});
