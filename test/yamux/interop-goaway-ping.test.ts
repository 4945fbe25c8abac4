// GoAway both ways and ping RTT both ways with hashicorp/yamux.
import { describe, expect, it } from 'vitest';
import { GoAwayCode, GoAwayError, type Stream } from '../../src/yamux/index.js';
import { findGoPeer, runGoPeer, startGoPeer } from '../helpers/go-peer.js';
import { echoExchange, serveService, sinkExchange, type ServiceReport } from '../helpers/services.js';
import { connectSession, listenSessions, serviceOptions, waitUntil } from '../helpers/yamux-sessions.js';
import { perTest } from '../helpers/per-test.js';

const GO_PEER = await findGoPeer();

const fx = perTest('kpg');
const { cleanups } = fx;

describe.skipIf(!GO_PEER)('GoAway with hashicorp/yamux', () => {
  it('Go sends GoAway: we open nothing new, the live stream finishes', async () => {
    const path = fx.tmp.socket('go');
    const go = await startGoPeer(GO_PEER!, ['serve', '-listen', path]);
    cleanups.push(() => go.stop());
    const session = await connectSession(path, { role: 'client', config: { enableKeepAlive: false } });
    cleanups.push(() => session.destroy());
    await go.waitForSessions();
    const stream = session.open();
    const held = sinkExchange(stream, 500_000, 1, { service: 'hold' });
    await waitUntil(() => stream.stats().bytesOut > 0, 'the held stream carries data');
    const goaway = new Promise<number>((r) => session.once('goaway', r));
    expect((await go.request('goaway', 'goaway-sent')).err).toBe('');
    expect(await goaway).toBe(GoAwayCode.Normal);
    expect(() => session.open()).toThrow(GoAwayError);
    expect(session.stats().remoteGoAway).toBe(true);
    go.command('release');
    await held;
    expect(session.closed).toBe(false);
    expect(go.errorLogs()).toEqual([]);
  });

  it('Go sends GoAway after accepting its first stream (-goaway-after 1)', async () => {
    const path = fx.tmp.socket('go');
    const go = await startGoPeer(GO_PEER!, ['serve', '-listen', path, '-goaway-after', '1']);
    cleanups.push(() => go.stop());
    const session = await connectSession(path, { role: 'client', config: { enableKeepAlive: false } });
    cleanups.push(() => session.destroy());
    const goaway = new Promise<number>((r) => session.once('goaway', r));
    await echoExchange(session.open(), 300_000, 2);
    expect(await goaway).toBe(GoAwayCode.Normal);
    expect(() => session.open()).toThrow(GoAwayError);
  });

  it('we send GoAway: the Go side cannot open more, its live stream finishes', async () => {
    const path = fx.tmp.socket('ts');
    const reports: ServiceReport[] = [];
    let inbound: Stream | null = null;
    const listener = await listenSessions(path, {
      role: 'server',
      config: { enableKeepAlive: false },
      onStream: (s) => {
        inbound = s;
        void serveService(s).then((r) => reports.push(r));
      },
    });
    cleanups.push(() => listener.close());
    const go = await startGoPeer(GO_PEER!, ['serve', '-connect', path, '-role', 'client']);
    cleanups.push(() => go.stop());
    const session = await listener.next();
    // The Go side is the yamux client here: its first stream is #1; a refused open reports #0.
    const live = go.request('open echo 3000000 4', (e) => e.event === 'open-result' && e.stream === 1, 20_000);
    await waitUntil(() => inbound !== null, 'the Go stream arrived');
    session.goAway();
    await session.ping(); // the Go side handles frames in order: it has seen the GoAway now
    const refused = await go.request('open echo 10 1', (e) => e.event === 'open-result' && e.stream === 0);
    expect(refused.err).toBe('open: remote end is not accepting connections');
    expect((await live).err).toBe('');
    expect(reports.filter((r) => r.error)).toEqual([]);
    expect(session.stats()).toMatchObject({ localGoAway: true, accepted: 1 });
    expect(go.errorLogs()).toEqual([]);
  });
});

describe.skipIf(!GO_PEER)('GoAway from a Go client', () => {
  it('sent mid-workload: its streams all finish, we cannot open towards it', async () => {
    const path = fx.tmp.socket('ts');
    const reports: ServiceReport[] = [];
    const listener = await listenSessions(path, serviceOptions('server', reports));
    cleanups.push(() => listener.close());
    const seen: { code: number; openError: unknown; live: number }[] = [];
    void listener.next().then((session) =>
      session.on('goaway', (code: number) => {
        let openError: unknown = null;
        try {
          session.open();
        } catch (err) {
          openError = err;
        }
        seen.push({ code, openError, live: session.streamCount });
      }),
    );
    const { code, events, peer } = await runGoPeer(GO_PEER!, [
      'load', '-connect', path, '-streams', '40', '-max-size', '2000000', '-workload', 'echo', '-goaway',
    ]);
    expect(events.find((e) => e.event === 'goaway-sent')?.err).toBe('');
    expect(events.find((e) => e.event === 'result'), peer.transcript()).toMatchObject({ ok: 40, errors: 0 });
    expect(code).toBe(0);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.code).toBe(GoAwayCode.Normal);
    expect(seen[0]!.openError).toBeInstanceOf(GoAwayError);
    expect(seen[0]!.live).toBeGreaterThan(0); // streams were still running when it came
    expect(reports).toHaveLength(40);
    expect(reports.filter((r) => r.error)).toEqual([]);
  });
});

describe.skipIf(!GO_PEER)('ping with hashicorp/yamux', () => {
  it('we ping the Go side', async () => {
    const path = fx.tmp.socket('go');
    const go = await startGoPeer(GO_PEER!, ['serve', '-listen', path]);
    cleanups.push(() => go.stop());
    const session = await connectSession(path, { role: 'client', config: { enableKeepAlive: false } });
    cleanups.push(() => session.destroy());
    const rtts = [];
    for (let i = 0; i < 5; i++) rtts.push(await session.ping());
    for (const rtt of rtts) {
      expect(rtt).toBeGreaterThanOrEqual(0);
      expect(rtt).toBeLessThan(1000);
    }
    const together = await Promise.all([session.ping(), session.ping(), session.ping()]);
    expect(together).toHaveLength(3);
  });

  it('the Go side pings us and gets every answer', async () => {
    const path = fx.tmp.socket('ts');
    const listener = await listenSessions(path, serviceOptions('server', []));
    cleanups.push(() => listener.close());
    const { code, events, peer } = await runGoPeer(GO_PEER!, ['ping', '-connect', path, '-count', '5'], 20_000);
    expect(code, peer.transcript()).toBe(0);
    const result = events.find((e) => e.event === 'result');
    expect(result).toMatchObject({ count: 5 });
    expect(Number(result!.maxMs)).toBeLessThan(1000);
    expect(events.filter((e) => e.event === 'ping' && e.err)).toEqual([]);
  });
});
