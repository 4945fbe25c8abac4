// The test rig itself, before it judges our engine: the Go peer against itself (also through
// the re-chunking relay, watched by the LinkChecker), its generator against ours, and the TS
// service helpers over plain sockets.
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { sha256Hex, sourceBytes, sourceDigest } from '../helpers/data.js';
import { F, LinkChecker, RawPeer, dataFrame, windowUpdate } from '../helpers/frames.js';
import { findGoPeer, runGoPeer, startGoPeer, type GoPeer } from '../helpers/go-peer.js';
import { startRechunkRelay, type Relay } from '../helpers/rechunk-relay.js';
import { echoExchange, serveService, sinkExchange, sourceExchange, type ServiceReport } from '../helpers/services.js';
import { perTest } from '../helpers/per-test.js';

const GO_PEER = await findGoPeer();

const fx = perTest('kpi');
const { cleanups } = fx;

describe('test helpers without yamux', () => {
  it('services over a plain socket: echo, sink, source, and reading after our own end()', async () => {
    const path = fx.tmp.socket('plain');
    const reports: ServiceReport[] = [];
    const server = net.createServer({ allowHalfOpen: true }, (s) => void serveService(s).then((r) => reports.push(r)));
    server.listen(path);
    await once(server, 'listening');
    cleanups.push(() => server.close());
    const conn = async () => {
      const s = net.connect({ path, allowHalfOpen: true });
      await once(s, 'connect');
      return s;
    };
    await echoExchange(await conn(), 300_000, 1);
    await echoExchange(await conn(), 1000, 2, { withLength: true });
    await sinkExchange(await conn(), 123_457, 3);
    await sourceExchange(await conn(), 777_777, 4);
    await expect(sinkExchange(await conn(), 10, 5, { service: 'nope' })).rejects.toThrow(/sink reply/);
    await new Promise((r) => setTimeout(r, 20));
    expect(reports.map((r) => r.service).sort()).toEqual(['echo', 'echo', 'nope', 'sink', 'source']);
    expect(reports.find((r) => r.service === 'sink')).toMatchObject({ in: 123_457, inSha256: sourceDigest(123_457, 3) });
  });

  it('LinkChecker flags a second FIN, data beyond the window and data after FIN', () => {
    const c = new LinkChecker();
    c.observe('a', Buffer.concat([windowUpdate(1, F.SYN), dataFrame(1, Buffer.alloc(200_000))]));
    c.observe('b', windowUpdate(1, F.ACK, 10));
    c.observe('a', dataFrame(1, Buffer.alloc(62_154))); // 256 KiB + 10 in all: fine
    expect(c.violations).toEqual([]);
    c.observe('a', dataFrame(1, Buffer.alloc(1)).subarray(0, 5)); // split header
    c.observe('a', dataFrame(1, Buffer.alloc(1)).subarray(5));
    c.observe('a', windowUpdate(1, F.FIN));
    c.observe('a', Buffer.concat([windowUpdate(1, F.FIN), dataFrame(1, 'x')]));
    expect(c.violations).toEqual([
      'a: Data - #1 1: exceeds the window (credit 0)',
      'a: WindowUpdate FIN #1 0: second FIN',
      'a: Data - #1 1: data after own FIN',
      'a: Data - #1 1: exceeds the window (credit -1)',
    ]);
  });

  it('generator: known values', () => {
    // x = 1: x ^= x<<13 -> 0x2001; x ^= x>>>17 -> 0x2001; x ^= x<<5 -> 0x42021 (little-endian)
    expect(sourceBytes(4, 1).toString('hex')).toBe('21200400');
    expect(sourceBytes(0, 1).length).toBe(0);
    const whole = sourceBytes(1001, 9);
    expect(Buffer.concat([sourceBytes(1001, 9).subarray(0, 3), whole.subarray(3)]).equals(whole)).toBe(true);
  });
});

describe.skipIf(!GO_PEER)('Go peer (hashicorp/yamux df201c7) against itself', () => {
  const bin = GO_PEER!;

  it('generates the same bytes as test/helpers/data.ts', async () => {
    for (const [n, seed] of [
      [0, 0],
      [7, 0],
      [1_000_003, 123],
      [13, 4294967295],
    ] as const) {
      const { stdout } = await promisify(execFile)(bin, ['gen', String(n), String(seed)], {
        encoding: 'buffer',
        maxBuffer: 8 << 20,
      });
      expect(sha256Hex(stdout), `gen ${n} ${seed}`).toBe(sourceDigest(n, seed));
    }
  });

  it('load against serve through the re-chunking relay, every frame within the rules', async () => {
    const serverPath = fx.tmp.socket('go');
    const server: GoPeer = await startGoPeer(bin, ['serve', '-listen', serverPath]);
    cleanups.push(() => server.stop());
    const checker = new LinkChecker();
    const relay: Relay = await startRechunkRelay({
      listenPath: fx.tmp.socket('relay'),
      targetPath: serverPath,
      piecesPerTurn: 4,
      tap: (from, chunk) => checker.observe(from, chunk),
    });
    cleanups.push(() => relay.close());
    const { code, events, peer } = await runGoPeer(bin, [
      'load', '-connect', relay.path, '-streams', '100', '-max-size', '4000', '-big', '1', '-big-size', '300000',
      '-workload', 'mixed',
    ]);
    const result = events.find((e) => e.event === 'result');
    expect(result, peer.transcript()).toMatchObject({ streams: 100, ok: 100, errors: 0, logErrors: 0, sessionAlive: true });
    expect(code).toBe(0);
    expect(checker.violations).toEqual([]);
    expect(checker.streams.size).toBe(100);
    expect(relay.bytes.a).toBeGreaterThan(300_000);
    expect(server.errorLogs()).toEqual([]);
  }, 60_000);

  it('bench mode prints a throughput line per run', async () => {
    const { code, events } = await runGoPeer(bin, ['bench', '-mib', '2', '-streams', '1,4', '-dir', 'up,down']);
    expect(code).toBe(0);
    const lines = events.filter((e) => e.event === 'bench');
    expect(lines.map((e) => `${e.dir}x${e.streams}`)).toEqual(['upx1', 'upx4', 'downx1', 'downx4']);
    for (const l of lines) expect(l).toMatchObject({ errors: 0, peer: 'go-go' });
  }, 30_000);

  // The premise of interop-stress: hashicorp really kills the session for these.
  for (const [what, frames, logged] of [
    ['a second FIN', [windowUpdate(1, F.SYN), dataFrame(1, 'hold\n'), windowUpdate(1, F.FIN), windowUpdate(1, F.FIN)], /unexpected FIN flag/],
    ['data beyond the window', [windowUpdate(1, F.SYN), dataFrame(1, Buffer.alloc(256 * 1024 + 1))], /receive window exceeded/],
  ] as const) {
    it(`hashicorp tears the session down on ${what}`, async () => {
      const path = fx.tmp.socket('go');
      const go = await startGoPeer(bin, ['serve', '-listen', path]);
      cleanups.push(() => go.stop());
      const raw = await RawPeer.connect(path);
      cleanups.push(() => raw.close());
      raw.send(...frames);
      await go.waitFor('session-closed');
      expect(go.errorLogs().join('\n')).toMatch(logged);
      await raw.ended; // hashicorp closed the connection
    });
  }
});
