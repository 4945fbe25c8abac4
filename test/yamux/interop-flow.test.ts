// Flow control against hashicorp/yamux: a slow reader on either side stalls its writer at the
// window while the other streams keep flowing, and nothing piles up beyond the window.
import { beforeEach, describe, expect, it } from 'vitest';
import type { Session, Stream } from '../../src/yamux/index.js';
import { sourceDigest, testSizes } from '../helpers/data.js';
import { findGoPeer, startGoPeer, type GoPeer } from '../helpers/go-peer.js';
import { ByteReader, echoExchange, sinkExchange, writeChunk } from '../helpers/services.js';
import { connectSession, waitUntil } from '../helpers/yamux-sessions.js';
import { perTest } from '../helpers/per-test.js';

const GO_PEER = await findGoPeer();
const WINDOW = 256 * 1024;

const fx = perTest('kpf');
const { cleanups } = fx;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** 30 echo streams of up to 200 KB on other streams: must finish while one stream is stalled. */
async function othersFlow(session: Session): Promise<void> {
  const sizes = testSizes(30, { maxSize: 200_000, seed: 77 });
  await Promise.all(sizes.map((n, i) => echoExchange(session.open(), n, 1000 + i)));
}

describe.skipIf(!GO_PEER)('flow control with hashicorp/yamux', () => {
  let go: GoPeer;
  let session: Session;

  beforeEach(async () => {
    const path = fx.tmp.socket('go');
    go = await startGoPeer(GO_PEER!, ['serve', '-listen', path]);
    cleanups.push(() => go.stop());
    session = await connectSession(path, { role: 'client', config: { enableKeepAlive: false } });
    cleanups.push(() => session.destroy());
  });

  it('the Go side does not read: our writer stops at exactly one window', async () => {
    const stream = session.open();
    const size = 3_000_000;
    const held = sinkExchange(stream, size, 3, { service: 'hold' });
    await waitUntil(() => stream.stats().sendWindow === 0, 'our send window is used up');
    await othersFlow(session);
    await sleep(100);
    const st = stream.stats();
    expect(st.bytesOut).toBe(WINDOW); // "hold\n" + data: the peer granted 256 KiB, no more
    expect(st.sendWindow).toBe(0);
    expect(st.bufferedOut).toBeGreaterThan(0);
    expect(st.bufferedOut).toBeLessThan(size); // writeSource respects back-pressure
    go.command('release');
    await held;
    expect(go.errorLogs()).toEqual([]);
  }, 20_000);

  it('the Go side reads slowly (slow 2000000): the stream completes, others are not held up', async () => {
    const stream = session.open();
    const slow = sinkExchange(stream, 1_500_000, 4, { service: 'slow 2000000' }).then(() => Date.now());
    const started = Date.now();
    await othersFlow(session);
    const othersDone = Date.now();
    const slowDone = await slow;
    expect(slowDone - started).toBeGreaterThanOrEqual(600); // 1.5 MB at 2 MB/s
    expect(othersDone).toBeLessThan(slowDone);
  }, 20_000);

  it('we do not read: the Go writer stalls and our buffer never exceeds the window', async () => {
    const n = 4_000_000;
    const stream: Stream = session.open();
    await writeChunk(stream, Buffer.from(`source ${n} 8\n`));
    let maxBuffered = 0;
    const sample = setInterval(() => {
      maxBuffered = Math.max(maxBuffered, stream.readableLength, stream.stats().bufferedIn);
    }, 2);
    try {
      await waitUntil(() => stream.stats().bytesIn === WINDOW, 'one window arrived');
      await othersFlow(session);
      await sleep(100);
      const st = stream.stats();
      expect(st.bytesIn).toBe(WINDOW);
      expect(st.recvWindow).toBe(0);
      expect(st.bufferedIn).toBeLessThanOrEqual(WINDOW);
      expect(stream.readableLength).toBeLessThanOrEqual(WINDOW);
      expect(maxBuffered).toBeLessThanOrEqual(WINDOW);
      expect(go.find((e) => e.event === 'stream' && e.stream === stream.id)).toEqual([]); // still writing
      const got = await new ByteReader(stream).drain(Infinity, () => {
        maxBuffered = Math.max(maxBuffered, stream.readableLength, stream.stats().bufferedIn);
      });
      expect(got).toEqual({ bytes: n, sha256: sourceDigest(n, 8) });
      expect(maxBuffered).toBeLessThanOrEqual(WINDOW);
    } finally {
      clearInterval(sample);
    }
    stream.end();
    const ev = await go.waitFor((e) => e.event === 'stream' && e.stream === stream.id);
    expect(ev).toMatchObject({ out: n, err: '' });
  }, 20_000);
});

describe.skipIf(!GO_PEER)('windows above 256 KiB with hashicorp/yamux', () => {
  const MiB = 1024 * 1024;

  it('ours (1 MiB, announced with the SYN): hashicorp sends exactly 1 MiB before our reader moves', async () => {
    const path = fx.tmp.socket('go');
    const go = await startGoPeer(GO_PEER!, ['serve', '-listen', path]);
    cleanups.push(() => go.stop());
    const session = await connectSession(path, { role: 'client', config: { enableKeepAlive: false, maxStreamWindowSize: MiB } });
    cleanups.push(() => session.destroy());
    const stream = session.open();
    await writeChunk(stream, Buffer.from('source 3000000 2\n'));
    await waitUntil(() => stream.stats().bytesIn === MiB, 'one 1 MiB window arrived');
    await sleep(100);
    expect(stream.stats().bytesIn).toBe(MiB);
    expect(stream.stats().bufferedIn).toBeLessThanOrEqual(MiB);
    const got = await new ByteReader(stream).drain();
    expect(got).toEqual({ bytes: 3_000_000, sha256: sourceDigest(3_000_000, 2) });
    expect(go.errorLogs()).toEqual([]);
  });

  it('hashicorp\'s (MaxStreamWindowSize 1 MiB, announced with the ACK): we send exactly 1 MiB to a non-reader', async () => {
    const path = fx.tmp.socket('go');
    const go = await startGoPeer(GO_PEER!, ['serve', '-listen', path, '-window', String(MiB)]);
    cleanups.push(() => go.stop());
    const session = await connectSession(path, { role: 'client', config: { enableKeepAlive: false } });
    cleanups.push(() => session.destroy());
    const stream = session.open();
    const held = sinkExchange(stream, 3_000_000, 6, { service: 'hold' });
    await waitUntil(() => stream.stats().bytesOut === MiB, 'one 1 MiB window went out');
    await sleep(100);
    expect(stream.stats()).toMatchObject({ bytesOut: MiB, sendWindow: 0 });
    go.command('release');
    await held;
    expect(go.errorLogs()).toEqual([]);
  });
});
