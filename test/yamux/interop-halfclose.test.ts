// Half-close against hashicorp/yamux: whoever sends FIN first can still read what the other
// side sends afterwards. (hashicorp df201c7 itself cannot read after its own Close(): the Go
// peer's fin-first service works around that, see main.go.)
import { beforeEach, describe, expect, it } from 'vitest';
import type { Session } from '../../src/yamux/index.js';
import { sourceDigest } from '../helpers/data.js';
import { findGoPeer, runGoPeer, startGoPeer, type GoPeer } from '../helpers/go-peer.js';
import { ByteReader, endStream, writeChunk, writeSource, type ServiceReport } from '../helpers/services.js';
import { connectSession, listenSessions, serviceOptions, waitUntil } from '../helpers/yamux-sessions.js';
import { F, LinkChecker } from '../helpers/frames.js';
import { startRechunkRelay } from '../helpers/rechunk-relay.js';
import { perTest } from '../helpers/per-test.js';

const GO_PEER = await findGoPeer();

const fx = perTest('kph');
const { cleanups } = fx;

describe.skipIf(!GO_PEER)('half-close with hashicorp/yamux', () => {
  const bin = GO_PEER!;
  let go: GoPeer;
  let session: Session;

  beforeEach(async () => {
    const path = fx.tmp.socket('go');
    go = await startGoPeer(bin, ['serve', '-listen', path]);
    cleanups.push(() => go.stop());
    session = await connectSession(path, { role: 'client', config: { enableKeepAlive: false } });
    cleanups.push(() => session.destroy());
  });

  it('we end() first and keep reading: the reply comes after our FIN', async () => {
    const stream = session.open();
    const reader = new ByteReader(stream);
    await writeChunk(stream, Buffer.from('sink\n'));
    const sent = await writeSource(stream, 1_000_000, 21);
    await endStream(stream);
    expect(stream.stats()).toMatchObject({ localFin: true, remoteFin: false });
    const reply = (await reader.all()).toString();
    expect(reply).toBe(`${sent} 1000000\n`);
    expect(stream.stats()).toMatchObject({ localFin: true, remoteFin: true, state: 'closed' });
    const ev = await go.waitFor((e) => e.event === 'stream' && e.stream === stream.id);
    expect(ev).toMatchObject({ service: 'sink', in: 1_000_000, err: '' });
    expect(session.streamCount).toBe(0);
  });

  it('the peer ends first and we keep writing: it reads what we send after its FIN', async () => {
    const n = 300_000;
    const m = 200_000; // under one window: the Go side reads it after its Close()
    const stream = session.open();
    const reader = new ByteReader(stream);
    await writeChunk(stream, Buffer.from(`fin-first ${n} 5 ${m}\n`));
    const got = await reader.drain(); // to the peer's FIN
    expect(got).toEqual({ bytes: n, sha256: sourceDigest(n, 5) });
    expect(stream.stats()).toMatchObject({ remoteFin: true, localFin: false });
    const sent = await writeSource(stream, m, 6);
    await endStream(stream);
    const ev = await go.waitFor((e) => e.event === 'stream' && e.stream === stream.id);
    expect(ev).toMatchObject({ service: 'fin-first', out: n, in: m, inSha256: sent, err: '' });
    expect(go.errorLogs()).toEqual([]);
    expect(session.streamCount).toBe(0);
  });

  it('hashicorp never ACKs a stream whose FIN came before Accept(): ours still completes', async () => {
    // A second Go peer that accepts only when told.
    const path = fx.tmp.socket('gohold');
    const held = await startGoPeer(bin, ['serve', '-listen', path, '-accept=false']);
    cleanups.push(() => held.stop());
    const checker = new LinkChecker(true);
    const relay = await startRechunkRelay({ listenPath: fx.tmp.socket('tap'), targetPath: path, rechunk: false, tap: (from, c) => checker.observe(from, c) });
    cleanups.push(() => relay.close());
    const s2 = await connectSession(relay.path, { role: 'client', config: { enableKeepAlive: false, streamOpenTimeout: 100 } });
    cleanups.push(() => s2.destroy());
    const stream = s2.open();
    const reader = new ByteReader(stream);
    await writeChunk(stream, Buffer.from('source 500000 3\n'));
    await endStream(stream);
    await new Promise((r) => setTimeout(r, 200)); // longer than streamOpenTimeout
    await held.request('accept', 'accepting');
    expect(await reader.drain()).toEqual({ bytes: 500_000, sha256: sourceDigest(500_000, 3) });
    await waitUntil(() => s2.streamCount === 0, 'the stream is finished');
    const fromGo = checker.frames.filter((f) => f.from === 'b' && f.frame.streamId === stream.id);
    expect(fromGo.filter((f) => f.frame.flags & F.ACK)).toEqual([]); // the case really happened
    expect(fromGo.filter((f) => f.frame.flags & F.RST)).toEqual([]);
    expect(checker.frames.filter((f) => f.from === 'a' && f.frame.flags & F.RST)).toEqual([]);
    expect(checker.violations).toEqual([]);
  });

  it('echo: we end() after writing, the echo keeps flowing until the peer FINs', async () => {
    const stream = session.open();
    const reader = new ByteReader(stream);
    await writeChunk(stream, Buffer.from('echo\n'));
    const reading = reader.drain();
    const sent = await writeSource(stream, 2_000_000, 9);
    await endStream(stream);
    expect(await reading).toEqual({ bytes: 2_000_000, sha256: sent });
  });
});

describe.skipIf(!GO_PEER)('half-close with a Go client', () => {
  it('our server ends first (source) and reads the trailer the Go client writes after our FIN', async () => {
    const path = fx.tmp.socket('ts');
    const reports: ServiceReport[] = [];
    const listener = await listenSessions(path, serviceOptions('server', reports));
    cleanups.push(() => listener.close());
    const { code, events, peer } = await runGoPeer(GO_PEER!, [
      'load', '-connect', path, '-streams', '20', '-max-size', '400000', '-workload', 'source', '-trailer', '100000',
    ]);
    expect(events.find((e) => e.event === 'result'), peer.transcript()).toMatchObject({ ok: 20, errors: 0 });
    expect(code).toBe(0);
    expect(reports).toHaveLength(20);
    for (const r of reports) {
      expect(r.error).toBeUndefined();
      expect(r.afterFin).toEqual({ bytes: 100_000, sha256: sourceDigest(100_000, Number(r.args[1]) + 1) });
    }
  });
});
