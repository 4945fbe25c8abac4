// Session.snapshot() / Session.adopt(): a session handed to a new Session object mid-transfer
// (its link's reading stopped at the handle, the snapshot through JSON as another process gets
// it) carries on byte-exact with hashicorp/yamux, which never notices.
import { once } from 'node:events';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { resumeReading, stopReading, whenFlushed } from '../../src/channel/socket-handover.js';
import { Session, SnapshotError, type SessionOptions, type Stream } from '../../src/yamux/index.js';
import { sha256Hex, sourceBytes, sourceDigest } from '../helpers/data.js';
import { findGoPeer, startGoPeer } from '../helpers/go-peer.js';
import { perTest } from '../helpers/per-test.js';

const GO_PEER = await findGoPeer();
const fx = perTest('kys');

const OPTIONS: SessionOptions = { role: 'client', config: { enableKeepAlive: false, autoTuneWindowCap: 4 * 1024 * 1024 } };

/** One stream's exchange whose Stream object can be swapped for its adopted successor. */
class Lane {
  stream!: Stream;
  readonly received: Buffer[] = [];
  error: Error | null = null;
  readonly ended: Promise<void>;
  private endedResolve!: () => void;
  private swapped: () => void = () => {};

  constructor(stream: Stream) {
    this.ended = new Promise((r) => (this.endedResolve = r));
    this.bind(stream);
  }

  get bytes(): Buffer {
    return Buffer.concat(this.received);
  }

  swap(next: Stream): void {
    this.stream.removeAllListeners();
    this.stream.on('error', () => {});
    this.bind(next);
    this.swapped();
  }

  /** Writes `data` in small pieces with back-pressure, following swaps. */
  async write(data: Buffer, end: boolean): Promise<void> {
    for (let at = 0; at < data.length; at += 8192) {
      const stream = this.stream;
      if (!stream.write(data.subarray(at, at + 8192))) {
        await Promise.race([once(stream, 'drain'), new Promise<void>((r) => (this.swapped = r))]);
      }
      if (at % (64 * 1024) === 0) await new Promise((r) => setImmediate(r));
    }
    if (end) this.stream.end();
  }

  private bind(stream: Stream): void {
    this.stream = stream;
    stream.on('data', (d: Buffer) => this.received.push(d));
    stream.once('end', () => this.endedResolve());
    stream.on('error', (err: Error) => (this.error = err));
  }
}

/** The handover as a host does it, in one process: stop reading, snapshot, let go, adopt. */
async function handOver(session: Session, socket: net.Socket): Promise<Session> {
  stopReading(socket);
  session.suspend();
  expect(await whenFlushed([socket], 2000)).toBe(true);
  const snapshot = JSON.parse(JSON.stringify(session.snapshot())) as unknown;
  session.release();
  const next = Session.adopt(socket, OPTIONS, snapshot);
  resumeReading(socket);
  return next;
}

function swapAll(lanes: Lane[], session: Session): void {
  const byId = new Map([...session.streams()].map((s) => [s.id, s]));
  for (const lane of lanes) {
    const next = byId.get(lane.stream.id);
    if (next) lane.swap(next);
  }
}

describe.skipIf(!GO_PEER)('session handover (snapshot / adopt) with hashicorp/yamux', () => {
  it('three handovers at random moments of uploads, downloads and echoes: every byte once, in order', async () => {
    const path = fx.tmp.socket('go');
    const go = await startGoPeer(GO_PEER!, ['serve', '-listen', path]);
    fx.cleanups.push(() => go.stop());
    const socket = net.connect({ path, allowHalfOpen: true });
    await once(socket, 'connect');
    let session = new Session(socket, OPTIONS);
    fx.cleanups.push(() => session.destroy());

    const SIZE = 3_000_000;
    const lanes: { lane: Lane; check: () => Promise<void> }[] = [];
    for (let i = 0; i < 4; i++) {
      const down = new Lane(session.open());
      void down.write(Buffer.from(`source ${SIZE} ${i + 1}\n`), false);
      lanes.push({ lane: down, check: async () => {
        await down.ended;
        expect(down.bytes.length).toBe(SIZE);
        expect(sha256Hex(down.bytes)).toBe(sourceDigest(SIZE, i + 1));
      } });
      const upData = sourceBytes(SIZE, 100 + i);
      const up = new Lane(session.open());
      const upDone = up.write(Buffer.concat([Buffer.from(`sink ${SIZE}\n`), upData]), true);
      lanes.push({ lane: up, check: async () => {
        await upDone;
        await up.ended;
        expect(up.bytes.toString()).toBe(`${sha256Hex(upData)} ${SIZE}\n`);
      } });
      const echoData = sourceBytes(SIZE / 2, 200 + i);
      const echo = new Lane(session.open());
      void echo.write(Buffer.concat([Buffer.from(`echo ${echoData.length}\n`), echoData]), false);
      lanes.push({ lane: echo, check: async () => {
        await echo.ended;
        expect(echo.bytes.equals(echoData)).toBe(true);
      } });
    }
    const rnd = (max: number) => Math.floor(Math.random() * max);
    for (let n = 0; n < 3; n++) {
      await new Promise((r) => setTimeout(r, 20 + rnd(80)));
      const nextId = (session as unknown as { nextId: number }).nextId;
      session = await handOver(session, socket);
      expect((session as unknown as { nextId: number }).nextId).toBe(nextId);
      swapAll(lanes.map((l) => l.lane), session);
    }
    for (const { lane, check } of lanes) {
      await check();
      expect(lane.error).toBeNull();
    }
    // The next stream gets the old session's next id, and works.
    const expectedId = 1 + 2 * lanes.length;
    const last = new Lane(session.open());
    expect(last.stream.id).toBe(expectedId);
    await last.write(Buffer.from('echo 5\nhello'), false);
    await last.ended;
    expect(last.bytes.toString()).toBe('hello');
    expect(go.errorLogs()).toEqual([]);
    expect(go.sessionEnds()).toEqual([]);
    expect(go.find('session')).toHaveLength(1);
    const streamErrors = go.find((e) => e.event === 'stream' && e.err !== '');
    expect(streamErrors).toEqual([]);
  }, 60_000);

  it('a handover while the link holds a frame cut in the middle (partial header and payload)', async () => {
    // Our own peer writes frames one byte at a time: the decoder is caught between reads.
    const path = fx.tmp.socket('raw');
    const server = net.createServer({ allowHalfOpen: true });
    server.listen(path);
    await once(server, 'listening');
    fx.cleanups.push(() => new Promise((r) => server.close(r)));
    const socket = net.connect({ path, allowHalfOpen: true });
    const [peer] = (await once(server, 'connection')) as [net.Socket];
    fx.cleanups.push(() => peer.destroy());
    let session = new Session(socket, OPTIONS);
    fx.cleanups.push(() => session.destroy());
    const stream = session.open();
    const received: Buffer[] = [];
    const collect = (d: Buffer) => received.push(d);
    stream.on('data', collect);
    // ACK + 10 bytes of data for stream 1, sent as: 5 bytes of the header...
    const frame = Buffer.concat([header(1, 0x2, 1, 0), header(0, 0, 1, 10), Buffer.from('0123456789')]);
    peer.write(frame.subarray(0, 12 + 5));
    await until(() => session.streamCount === 1 && (session as any).decoder.scratchFill === 5);
    session = await handOver(session, socket);
    const next = [...session.streams()][0]!;
    next.on('data', collect);
    peer.write(frame.subarray(17, 12 + 12 + 4));
    await until(() => (session as any).decoder.payloadLeft === 6);
    session = await handOver(session, socket);
    const third = [...session.streams()][0]!;
    third.on('data', collect);
    third.on('error', () => {});
    peer.write(frame.subarray(28));
    await until(() => Buffer.concat(received).length === 10);
    expect(Buffer.concat(received).toString()).toBe('0123456789');
    expect(third.stats().state).toBe('established');
  });

  it('refuses a snapshot of another version before touching the link', () => {
    const socket = new net.Socket();
    expect(() => Session.adopt(socket, OPTIONS, { version: 2 })).toThrow(SnapshotError);
    expect(() => Session.adopt(socket, OPTIONS, { version: 2 })).toThrow(/version 2 is not supported/);
    expect(socket.listenerCount('data')).toBe(0);
  });
});

function header(type: number, flags: number, streamId: number, length: number): Buffer {
  const b = Buffer.alloc(12);
  b[0] = 0;
  b[1] = type;
  b.writeUInt16BE(flags, 2);
  b.writeUInt32BE(streamId, 4);
  b.writeUInt32BE(length, 8);
  return b;
}

async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}
