// hashicorp/yamux tears down the whole session on a second FIN for a stream or on a Data frame
// beyond the window. Race end(), writes, resets and the peer's own FIN on many streams, then
// check that the Go session survived without a complaint and that a LinkChecker watching the
// wire saw no breach.
import { describe, expect, it } from 'vitest';
import { StreamResetError, type Session, type Stream } from '../../src/yamux/index.js';
import { prng, sourceBytes, sourceDigest, sha256Hex } from '../helpers/data.js';
import { LinkChecker } from '../helpers/frames.js';
import { findGoPeer, runGoPeer, startGoPeer } from '../helpers/go-peer.js';
import { startRechunkRelay } from '../helpers/rechunk-relay.js';
import { ByteReader } from '../helpers/services.js';
import { connectSession, ourServerBehindCheckedRelay } from '../helpers/yamux-sessions.js';
import { perTest } from '../helpers/per-test.js';

const GO_PEER = await findGoPeer();

const fx = perTest('kps');
const { cleanups } = fx;

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One stream's racy behaviour; resolves when it is over, rejects on a wrong result. */
type Scenario = (session: Session, rnd: () => number) => Promise<void>;

const expectReply = async (stream: Stream, body: Buffer) => {
  const reply = (await new ByteReader(stream).all()).toString();
  if (reply !== `${sha256Hex(body)} ${body.length}\n`) throw new Error(`stream ${stream.id}: bad reply ${reply}`);
};

const scenarios: Record<string, Scenario> = {
  // many unawaited writes (past the window) and end(last) at once
  async 'writes+end(last)'(session, rnd) {
    const s = session.open();
    const parts = Array.from({ length: 1 + Math.floor(rnd() * 8) }, (_, i) => sourceBytes(Math.floor(rnd() * 90_000), i));
    s.write('sink\n');
    for (const p of parts.slice(0, -1)) s.write(p);
    s.end(parts[parts.length - 1]);
    await expectReply(s, Buffer.concat(parts));
  },
  // echo of more than a window, end() right behind the write
  async 'echo+end'(session, rnd) {
    const s = session.open();
    const body = sourceBytes(300_000 + Math.floor(rnd() * 300_000), 3);
    s.write('echo\n');
    s.end(body);
    const back = await new ByteReader(s).all();
    if (!back.equals(body)) throw new Error(`stream ${s.id}: echo mismatch`);
  },
  // end() called again and again
  async 'end x3'(session) {
    const s = session.open();
    s.write('sink\n');
    s.end();
    s.end();
    await tick(1);
    s.end();
    await expectReply(s, Buffer.alloc(0));
  },
  // our FIN and the peer's FIN cross on the wire
  async 'crossing FINs'(session, rnd) {
    const s = session.open();
    const m = Math.floor(rnd() * 100_000);
    const body = sourceBytes(m, 9);
    s.write(`fin-first 50000 4 ${m}\n`);
    s.end(body);
    const got = await new ByteReader(s).all();
    if (sha256Hex(got) !== sourceDigest(50_000, 4)) throw new Error(`stream ${s.id}: fin-first data mismatch`);
  },
  // reset right after end(), with data still queued
  async 'end then reset'(session, rnd) {
    const s = session.open();
    s.on('error', () => {});
    s.write('sink\n');
    s.end(sourceBytes(400_000, 5));
    await tick(Math.floor(rnd() * 4));
    s.reset();
  },
  // the peer's data keeps coming after we ended and reset
  async 'reset while reading'(session) {
    const s = session.open();
    const closed = new Promise<Error | undefined>((r) => s.once('close', () => r(s.errored ?? undefined)));
    s.on('error', () => {});
    s.end('source 2000000 6\n');
    const r = new ByteReader(s);
    await r.chunk().catch(() => null);
    s.reset();
    const err = await closed;
    if (err && !(err instanceof StreamResetError) && (err as { code?: string }).code !== 'ERR_YAMUX_STREAM_RESET') {
      throw err;
    }
  },
};

describe.skipIf(!GO_PEER)('never a second FIN, never beyond the window (hashicorp/yamux)', () => {
  it('our client: 240 racing streams, the Go session survives and saw nothing wrong', async () => {
    const goPath = fx.tmp.socket('go');
    const go = await startGoPeer(GO_PEER!, ['serve', '-listen', goPath]);
    cleanups.push(() => go.stop());
    const checker = new LinkChecker();
    const relay = await startRechunkRelay({
      listenPath: fx.tmp.socket('tap'),
      targetPath: goPath,
      rechunk: false,
      tap: (from, c) => checker.observe(from, c),
    });
    cleanups.push(() => relay.close());
    const session = await connectSession(relay.path, { role: 'client', config: { enableKeepAlive: false } });
    cleanups.push(() => session.destroy());

    const rnd = prng(2024);
    const names = Object.keys(scenarios);
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: 240 }, async (_, i) => {
        const name = names[i % names.length]!;
        await scenarios[name]!(session, rnd).catch((err: Error) => failures.push(`${name}: ${err.message}`));
      }),
    );
    expect(failures).toEqual([]);
    await session.ping(); // everything we sent has been processed by the Go side
    expect(checker.violations).toEqual([]);
    expect(go.errorLogs()).toEqual([]);
    expect(go.sessionEnds()).toEqual([]);
    const stats = await go.request('stats', 'stats');
    expect(stats).toMatchObject({ closed: false, logErrors: 0 });
    expect((await go.request('ping', 'ping')).err).toBe('');
    expect(session.closed).toBe(false);
  }, 60_000);

  it('our server: a Go client with 300 streams through a tapping relay', async () => {
    const { relayPath, reports, checker } = await ourServerBehindCheckedRelay((n) => fx.tmp.socket(n), cleanups, { rechunk: false });
    const { code, events, peer } = await runGoPeer(GO_PEER!, [
      'load', '-connect', relayPath, '-streams', '300', '-max-size', '600000', '-workload', 'mixed', '-seed', '77',
      '-trailer', '3000',
    ]);
    expect(events.find((e) => e.event === 'result'), peer.transcript()).toMatchObject({ ok: 300, logErrors: 0, sessionAlive: true });
    expect(code).toBe(0);
    expect(checker.violations).toEqual([]);
    expect(reports.filter((r) => r.error)).toEqual([]);
  }, 60_000);
});
