// Many concurrent streams, 0 B to 16 MiB, every byte checked by sha256, against hashicorp/yamux
// in both roles, and again through the re-chunking relay.
import { describe, expect, it } from 'vitest';
import type { Session } from '../../src/yamux/index.js';
import { prng, testSizes } from '../helpers/data.js';
import { LinkChecker } from '../helpers/frames.js';
import { findGoPeer, runGoPeer, startGoPeer, type GoPeer } from '../helpers/go-peer.js';
import { startRechunkRelay } from '../helpers/rechunk-relay.js';
import { echoExchange, sinkExchange, sourceExchange, type ServiceReport } from '../helpers/services.js';
import { connectSession, listenSessions, ourServerBehindCheckedRelay, serviceOptions } from '../helpers/yamux-sessions.js';
import { perTest } from '../helpers/per-test.js';

const GO_PEER = await findGoPeer();
const MiB = 1024 * 1024;

const fx = perTest('kpb');
const { cleanups } = fx;

/** Runs `sizes.length` exchanges at once on `session`, cycling echo / sink / source. */
async function runExchanges(session: Session, sizes: number[], seed: number): Promise<number> {
  const rnd = prng(seed);
  const kinds = [echoExchange, sinkExchange, sourceExchange] as const;
  let bytes = 0;
  await Promise.all(
    sizes.map(async (size, i) => {
      const stream = session.open();
      const run = kinds[i % 3]!;
      const r = await run(stream, size, Math.floor(rnd() * 2 ** 32)).catch((err: Error) => {
        throw new Error(`stream ${stream.id} (${run.name} of ${size} bytes): ${err.message}`);
      });
      bytes += r.bytesIn + r.bytesOut;
    }),
  );
  return bytes;
}

function goStreamEvents(peer: GoPeer) {
  return peer.find('stream');
}

describe.skipIf(!GO_PEER)('bulk interop with hashicorp/yamux', () => {
  const bin = GO_PEER!;

  it('our client, Go server: 120 concurrent streams of 0 B..16 MiB', async () => {
    const path = fx.tmp.socket('go');
    const go = await startGoPeer(bin, ['serve', '-listen', path]);
    cleanups.push(() => go.stop());
    const session = await connectSession(path, { role: 'client', config: { enableKeepAlive: false } });
    cleanups.push(() => session.destroy());
    const sizes = testSizes(120, { maxSize: 256 * 1024, big: 3, bigSize: 16 * MiB, seed: 11 });
    const bytes = await runExchanges(session, sizes, 12);
    expect(bytes).toBeGreaterThan(60 * MiB);
    await expect.poll(() => goStreamEvents(go).length).toBe(120);
    expect(goStreamEvents(go).filter((e) => e.err !== '')).toEqual([]);
    expect(go.errorLogs()).toEqual([]);
    expect(go.sessionEnds()).toEqual([]);
    expect(session.closed).toBe(false);
    expect(session.streamCount).toBe(0);
  }, 60_000);

  it('Go client, our server: 120 concurrent streams of 0 B..16 MiB', async () => {
    const path = fx.tmp.socket('ts');
    const reports: ServiceReport[] = [];
    const listener = await listenSessions(path, serviceOptions('server', reports));
    cleanups.push(() => listener.close());
    const { code, events, peer } = await runGoPeer(bin, [
      'load', '-connect', path, '-streams', '120', '-big', '3', '-big-size', String(16 * MiB),
      '-max-size', String(256 * 1024), '-workload', 'mixed', '-seed', '5', '-trailer', '777',
    ]);
    const result = events.find((e) => e.event === 'result');
    expect(result, peer.transcript()).toMatchObject({ streams: 120, ok: 120, errors: 0, logErrors: 0, sessionAlive: true });
    expect(code).toBe(0);
    expect(reports).toHaveLength(120);
    expect(reports.filter((r) => r.error).map((r) => `${r.service}: ${r.error!.message}`)).toEqual([]);
    // source streams: we ended first, the Go client wrote its trailer after our FIN
    const sources = reports.filter((r) => r.service === 'source');
    expect(sources.length).toBeGreaterThan(20);
    for (const r of sources) expect(r.afterFin?.bytes).toBe(777);
  }, 60_000);

  it('our client, Go server, through the re-chunking relay (1..7-byte pieces)', async () => {
    const goPath = fx.tmp.socket('go');
    const go = await startGoPeer(bin, ['serve', '-listen', goPath]);
    cleanups.push(() => go.stop());
    const checker = new LinkChecker();
    const relay = await startRechunkRelay({
      listenPath: fx.tmp.socket('relay'),
      targetPath: goPath,
      tap: (from, chunk) => checker.observe(from, chunk),
    });
    cleanups.push(() => relay.close());
    const session = await connectSession(relay.path, { role: 'client', config: { enableKeepAlive: false } });
    cleanups.push(() => session.destroy());
    const sizes = testSizes(100, { maxSize: 3000, big: 1, bigSize: 300_000, seed: 3 });
    await runExchanges(session, sizes, 4);
    await expect.poll(() => goStreamEvents(go).length).toBe(100);
    expect(goStreamEvents(go).filter((e) => e.err !== '')).toEqual([]);
    expect(go.errorLogs()).toEqual([]);
    expect(checker.violations).toEqual([]);
    expect(session.closed).toBe(false);
  }, 60_000);

  it('Go client, our server, through the re-chunking relay', async () => {
    const { relayPath, reports, checker } = await ourServerBehindCheckedRelay((n) => fx.tmp.socket(n), cleanups, { seed: 99 });
    const { code, events, peer } = await runGoPeer(bin, [
      'load', '-connect', relayPath, '-streams', '100', '-big', '1', '-big-size', '300000',
      '-max-size', '3000', '-workload', 'mixed', '-seed', '8',
    ]);
    expect(events.find((e) => e.event === 'result'), peer.transcript()).toMatchObject({ ok: 100, errors: 0 });
    expect(code).toBe(0);
    expect(reports.filter((r) => r.error)).toEqual([]);
    expect(checker.violations).toEqual([]);
  }, 60_000);
});
