// Frame by frame: for the same operations our engine must put the same frames on the wire as
// hashicorp/yamux. Both are captured by the same raw-frame peer and compared as text.
import { describe, expect, it } from 'vitest';
import { Session } from '../../src/yamux/index.js';
import { F, RawPeer, T, dataFrame, describeFrame, encodeFrame, listenRaw, windowUpdate, type RawFrame } from '../helpers/frames.js';
import { findGoPeer, runGoPeer, startGoPeer } from '../helpers/go-peer.js';
import { connectSession, listenSessions, serviceOptions } from '../helpers/yamux-sessions.js';
import type { ServiceReport } from '../helpers/services.js';
import { perTest } from '../helpers/per-test.js';

const GO_PEER = await findGoPeer();

const fx = perTest('kpc');
const { cleanups } = fx;

const text = (frames: RawFrame[]) => frames.map((f) => describeFrame(f));
/** Ping values are opaque (spec): compare them as "<n>" but keep request/answer pairing. */
const normalisePings = (lines: string[]) => lines.map((l) => l.replace(/^(Ping \S+ #0) \d+$/, '$1 <n>'));

/** A server that speaks the Go peer's service protocol: ours, or the Go peer itself. */
type ServerKind = 'go' | 'ts';

async function startServer(kind: ServerKind, args: string[] = [], sessionOpts: Partial<ConstructorParameters<typeof Session>[1]> = {}) {
  const path = fx.tmp.socket(kind);
  if (kind === 'go') {
    const go = await startGoPeer(GO_PEER!, ['serve', '-listen', path, ...args]);
    cleanups.push(() => go.stop());
    return { path, go, session: async () => null };
  }
  const reports: ServiceReport[] = [];
  const listener = await listenSessions(path, { ...serviceOptions('server', reports), ...sessionOpts });
  cleanups.push(() => listener.close());
  return { path, go: null, session: () => listener.next() };
}

async function rawClient(path: string): Promise<RawPeer> {
  const peer = await RawPeer.connect(path);
  cleanups.push(() => peer.close());
  return peer;
}

describe.skipIf(!GO_PEER)('frame-by-frame comparison with hashicorp/yamux', () => {
  it('client: open, write "hello", close, ping', async () => {
    // hashicorp: the Go peer's record command against a raw listener.
    const goPath = fx.tmp.socket('rawgo');
    const rawGo = await listenRaw(goPath);
    cleanups.push(() => rawGo.close());
    const run = runGoPeer(GO_PEER!, ['record', '-connect', goPath], 10_000);
    const goPeer = await rawGo.next();
    const { code } = await run;
    expect(code).toBe(0);
    await goPeer.ended;
    // ours, against the same kind of listener.
    const tsPath = fx.tmp.socket('rawts');
    const rawTs = await listenRaw(tsPath);
    cleanups.push(() => rawTs.close());
    const session = await connectSession(tsPath, { role: 'client', config: { enableKeepAlive: false } });
    cleanups.push(() => session.destroy());
    const tsPeer = await rawTs.next();
    const stream = session.open();
    stream.on('error', () => {});
    // Go's Close() returns once its FIN is queued; end()'s callback is the same point for us.
    // (Our control frames, ping included, go ahead of queued Data: pinging before the end()
    // callback may put the Ping before "hello" — legal, but not hashicorp's order.)
    await new Promise<void>((r) => stream.end('hello', () => r()));
    await session.ping();
    await tsPeer.waitFor((f) => f.type === T.Ping, 1000);

    const expected = ['WindowUpdate SYN #1 0', 'Data - #1 5 "hello"', 'WindowUpdate FIN #1 0', 'Ping SYN #0 <n>'];
    expect(normalisePings(text(goPeer.frames))).toEqual(expected);
    expect(normalisePings(text(tsPeer.frames))).toEqual(expected);
  });

  for (const kind of ['go', 'ts'] as const) {
    it(`server (${kind}): ACK, echoed data, FIN, ping answer`, async () => {
      const server = await startServer(kind);
      const peer = await rawClient(server.path);
      peer.send(windowUpdate(1, F.SYN), dataFrame(1, 'echo\nhello'));
      // hashicorp sends no ACK at all when the FIN arrives before Accept(): wait for it first.
      await peer.waitFor((f) => f.streamId === 1 && (f.flags & F.ACK) !== 0, 2000, 'ACK');
      peer.send(windowUpdate(1, F.FIN));
      await peer.waitFor((f) => f.streamId === 1 && (f.flags & F.FIN) !== 0, 2000, 'FIN');
      peer.send(encodeFrame(T.Ping, F.SYN, 0, 7));
      await peer.waitFor((f) => f.type === T.Ping, 2000, 'ping answer');
      expect(text(peer.frames)).toEqual(['WindowUpdate ACK #1 0', 'Data - #1 5 "hello"', 'WindowUpdate FIN #1 0', 'Ping ACK #0 7']);
    });

    it(`server (${kind}): RST for a SYN beyond the accept backlog`, async () => {
      const server = await startServer(kind, ['-backlog', '1', '-accept=false'], {
        onStream: undefined,
        config: { enableKeepAlive: false, acceptBacklog: 1 },
      });
      const peer = await rawClient(server.path);
      peer.send(windowUpdate(1, F.SYN), windowUpdate(3, F.SYN));
      await peer.waitFor((f) => f.streamId === 3, 2000, 'answer to the second SYN');
      await new Promise((r) => setTimeout(r, 30));
      expect(text(peer.frames)).toEqual(['WindowUpdate RST #3 0']);
    });

    it(`server (${kind}): GoAway`, async () => {
      const server = await startServer(kind);
      const peer = await rawClient(server.path);
      peer.send(encodeFrame(T.Ping, F.SYN, 0, 1));
      await peer.waitFor((f) => f.type === T.Ping, 2000);
      if (server.go) {
        await server.go.waitForSessions();
        await server.go.request('goaway', 'goaway-sent');
      }
      else (await server.session())!.goAway();
      await peer.waitFor((f) => f.type === T.GoAway, 2000, 'GoAway');
      expect(text(peer.frames)).toEqual(['Ping ACK #0 1', 'GoAway - #0 0']);
    });

    it(`server (${kind}): a window update once half the window was consumed`, async () => {
      const server = await startServer(kind);
      const peer = await rawClient(server.path);
      const chunk = Buffer.alloc(16 * 1024, 0x61);
      peer.send(windowUpdate(1, F.SYN), dataFrame(1, 'sink\n'));
      for (let i = 0; i < 12; i++) peer.send(dataFrame(1, chunk)); // 192 KiB + 5 bytes
      const wu = await peer.waitFor((f) => f.type === T.WindowUpdate && f.flags === 0, 3000, 'window update');
      expect(wu.streamId).toBe(1);
      expect(wu.length).toBeGreaterThanOrEqual(128 * 1024);
      expect(wu.length).toBeLessThanOrEqual(12 * 16 * 1024 + 5);
      expect(text(peer.frames)[0]).toBe('WindowUpdate ACK #1 0');
    });
  }

  it('our reset() is the frame hashicorp uses for RST: WindowUpdate RST, delta 0', async () => {
    const path = fx.tmp.socket('raw');
    const raw = await listenRaw(path);
    cleanups.push(() => raw.close());
    const session = await connectSession(path, { role: 'client', config: { enableKeepAlive: false } });
    cleanups.push(() => session.destroy());
    const peer = await raw.next();
    const stream = session.open();
    stream.on('error', () => {});
    await peer.waitFor((f) => f.flags === F.SYN);
    peer.send(windowUpdate(1, F.ACK));
    stream.write('x');
    await peer.waitFor((f) => f.type === T.Data);
    stream.reset();
    await peer.waitFor((f) => (f.flags & F.RST) !== 0);
    expect(text(peer.frames)).toEqual(['WindowUpdate SYN #1 0', 'Data - #1 1 "x"', 'WindowUpdate RST #1 0']);
  });
});
