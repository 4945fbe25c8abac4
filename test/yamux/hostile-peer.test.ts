import { afterEach, describe, expect, it } from 'vitest';
import {
  Flag,
  FrameType,
  GoAwayCode,
  INITIAL_STREAM_WINDOW,
  ProtocolError,
  Session,
  WriteTimeoutError,
  encodeHeader,
  type SessionOptions,
  type YamuxConfig,
} from '../../src/yamux/index.js';
import { encodeFrame, RawPeer } from '../helpers/frames.js';
import { unixSocketPair } from '../helpers/socket-pair.js';
import { once, readAll, until } from '../helpers/yamux-pair.js';

// Our session against a hand-driven peer that sends what a hostile guest could.

let cleanup: (() => void) | null = null;
afterEach(() => {
  cleanup?.();
  cleanup = null;
});

async function againstRawPeer(
  role: 'client' | 'server' = 'client',
  rejectInbound = role === 'client',
  more: { config?: Partial<YamuxConfig> } & Pick<SessionOptions, 'maxRejectedStreams'> = {},
) {
  const pair = await unixSocketPair();
  const { config, ...options } = more;
  const session = new Session(pair.a, { role, rejectInbound, ...options, config: { enableKeepAlive: false, ...config } });
  const peer = new RawPeer(pair.b);
  const closed = once<Error | undefined>(session, 'close');
  cleanup = () => {
    for (const s of session.streams()) s.on('error', () => {});
    session.destroy();
    pair.close();
  };
  return { session, peer, closed };
}

async function expectProtocolFailure(
  setup: Awaited<ReturnType<typeof againstRawPeer>>,
  message: RegExp,
): Promise<void> {
  const err = await setup.closed;
  expect(err).toBeInstanceOf(ProtocolError);
  expect(err?.message).toMatch(message);
  const goAway = await setup.peer.waitFor((f) => f.type === FrameType.GoAway);
  expect(goAway.length).toBe(GoAwayCode.ProtocolError);
  await setup.peer.ended;
}

describe('untrusted peer: each violation ends the session with GoAway(protocol error)', () => {
  it('a Data frame longer than the receive window', async () => {
    const setup = await againstRawPeer();
    const s = setup.session.open();
    s.on('error', () => {});
    setup.peer.send(encodeFrame(FrameType.WindowUpdate, Flag.ACK, s.id, 0));
    setup.peer.send(encodeFrame(FrameType.Data, 0, s.id, INITIAL_STREAM_WINDOW + 1));
    await expectProtocolFailure(setup, /receive window|exceeds any stream window/);
  });

  it('cumulative data beyond the window (no single frame too big)', async () => {
    const setup = await againstRawPeer();
    const s = setup.session.open();
    s.on('error', () => {});
    s.pause(); // nobody reads: no credit is returned
    const chunk = Buffer.alloc(100 * 1024);
    for (let i = 0; i < 3; i++) setup.peer.send(encodeFrame(FrameType.Data, 0, s.id, chunk.length, chunk));
    await expectProtocolFailure(setup, /receive window/);
  });

  it('a window update that overflows 2^32-1', async () => {
    const setup = await againstRawPeer();
    const s = setup.session.open();
    s.on('error', () => {});
    setup.peer.send(encodeFrame(FrameType.WindowUpdate, Flag.ACK, s.id, 0xffff_ffff));
    await expectProtocolFailure(setup, /overflows/);
  });

  it('a SYN with our id parity', async () => {
    const setup = await againstRawPeer('server', false);
    setup.peer.send(encodeFrame(FrameType.WindowUpdate, Flag.SYN, 2, 0));
    await expectProtocolFailure(setup, /parity/);
  });

  it('a second SYN for a live stream', async () => {
    const setup = await againstRawPeer('server', false);
    setup.session.on('error', () => {});
    setup.peer.send(encodeFrame(FrameType.WindowUpdate, Flag.SYN, 1, 0));
    const s = await setup.session.accept();
    s.on('error', () => {});
    setup.peer.send(encodeFrame(FrameType.WindowUpdate, Flag.SYN, 1, 0));
    await expectProtocolFailure(setup, /SYN for live stream/);
  });

  it('an unknown frame type', async () => {
    const setup = await againstRawPeer();
    setup.peer.socket.write(Buffer.from([0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    await expectProtocolFailure(setup, /unknown frame type/);
  });

  it('an unknown version', async () => {
    const setup = await againstRawPeer();
    setup.peer.socket.write(Buffer.from([1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]));
    await expectProtocolFailure(setup, /version/);
  });

  it('a bogus 4 GiB length is refused from its header, allocating nothing for it', async () => {
    const setup = await againstRawPeer();
    const before = process.memoryUsage().arrayBuffers;
    setup.peer.send(encodeFrame(FrameType.Data, Flag.SYN, 2, 0xffff_fff0));
    await expectProtocolFailure(setup, /exceeds any stream window/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 * 1024 * 1024);
  });

  it('more SYNs than maxRejectedStreams on a rejecting session: the error counts them', async () => {
    const setup = await againstRawPeer('client', true, { maxRejectedStreams: 64 });
    const syns = Array.from({ length: 33_000 }, (_, i) => encodeFrame(FrameType.WindowUpdate, Flag.SYN, 2 + 2 * i, 0));
    setup.peer.send(...syns);
    await expectProtocolFailure(setup, /^yamux protocol error: peer opened 65 streams on a session that accepts none$/);
    expect(setup.session.stats().rejected).toBe(64);
  });

  it('with a write timeout, a peer that asks for answers and never reads them: "peer does not read"', async () => {
    const setup = await againstRawPeer('client', true, { config: { connectionWriteTimeout: 300 } });
    setup.peer.socket.pause();
    const ping = encodeHeader(FrameType.Ping, Flag.SYN, 0, 1);
    setup.peer.socket.write(Buffer.concat(Array.from({ length: 100_000 }, () => ping)));
    const err = await setup.closed;
    expect(err).toBeInstanceOf(WriteTimeoutError);
    expect(err?.message).toMatch(/^peer does not read: \d+ answers to its frames waited 300 ms for the link$/);
  });
});

describe('untrusted peer: floods of frames that demand answers', () => {
  it('33,000 SYNs from a peer that reads: every one is refused with RST, the session lives', async () => {
    const setup = await againstRawPeer('client', true);
    const syns = Array.from({ length: 33_000 }, (_, i) => encodeFrame(FrameType.WindowUpdate, Flag.SYN, 2 + 2 * i, 0));
    setup.peer.send(...syns);
    await until(() => setup.peer.frames.length >= 33_000, 20_000);
    expect(setup.peer.frames.every((f) => f.type === FrameType.WindowUpdate && f.flags === Flag.RST)).toBe(true);
    expect(setup.session.stats()).toMatchObject({ rejected: 33_000, streams: 0, readingPaused: false });
    expect(await setup.session.ping()).toBeGreaterThan(0);
  });

  it('a peer that floods pings without reading is no longer read; once it reads, every ping is answered', async () => {
    const setup = await againstRawPeer();
    setup.peer.socket.pause();
    const pings = 60_000;
    const ping = encodeHeader(FrameType.Ping, Flag.SYN, 0, 7);
    setup.peer.socket.write(Buffer.concat(Array.from({ length: pings }, () => ping)));
    await until(() => setup.session.stats().readingPaused, 10_000);
    // Bounded: the cap plus what one read of the link can ask for.
    expect(setup.session.writer.pendingAnswers).toBeLessThanOrEqual(1024 + 65_536 / 12);
    expect(setup.session.closed).toBe(false);
    setup.peer.socket.resume();
    await until(() => setup.peer.frames.length >= pings, 20_000);
    expect(setup.peer.frames.every((f) => f.type === FrameType.Ping && f.flags === Flag.ACK && f.length === 7)).toBe(true);
    await until(() => !setup.session.stats().readingPaused);
    expect(await setup.session.ping()).toBeGreaterThan(0);
  });

  it('a second GoAway changes nothing and is not reported again', async () => {
    const setup = await againstRawPeer();
    const seen: number[] = [];
    setup.session.on('goaway', (code: number) => seen.push(code));
    setup.peer.send(encodeFrame(FrameType.GoAway, 0, 0, GoAwayCode.Normal));
    for (let i = 0; i < 100; i++) setup.peer.send(encodeFrame(FrameType.GoAway, 0, 0, GoAwayCode.InternalError));
    expect(await setup.session.ping()).toBeGreaterThan(0);
    expect(seen).toEqual([GoAwayCode.Normal]);
  });
  it('a stream handed to a pending accept() and failed by the same read does not crash the process', async () => {
    const setup = await againstRawPeer('server', false);
    const accepted = setup.session.accept();
    // The SYN and a header of a version we do not speak arrive in one chunk: the stream is handed
    // out and failed before the code awaiting accept() can listen for its error.
    const badVersion = encodeFrame(0, 0, 0, 0);
    badVersion[0] = 1;
    setup.peer.send(encodeFrame(1, 1, 1, 0), badVersion);
    const stream = await accepted;
    await expectProtocolFailure(setup, /version 1/);
    expect(stream.destroyed).toBe(true);
    expect(stream.errored).toBeInstanceOf(ProtocolError);
  });
});

describe('untrusted peer: tolerated input', () => {
  it('frames for a recently reset stream are discarded and the session lives', async () => {
    const setup = await againstRawPeer();
    const s = setup.session.open();
    setup.peer.send(encodeFrame(FrameType.WindowUpdate, Flag.ACK, s.id, 0));
    s.reset();
    await setup.peer.waitFor((f) => f.streamId === s.id && (f.flags & Flag.RST) !== 0);
    setup.peer.send(encodeFrame(FrameType.Data, 0, s.id, 5, Buffer.from('late!')));
    setup.peer.send(encodeFrame(FrameType.WindowUpdate, 0, s.id, 1000));
    expect(await setup.session.ping()).toBeGreaterThan(0);
    expect(setup.session.closed).toBe(false);
  });

  it('inbound SYNs to a rejecting session are answered with RST and their data skipped', async () => {
    const setup = await againstRawPeer('client', true);
    setup.peer.send(encodeFrame(FrameType.Data, Flag.SYN, 2, 4, Buffer.from('evil')));
    const rst = await setup.peer.waitFor((f) => f.streamId === 2);
    expect(rst.type).toBe(FrameType.WindowUpdate);
    expect(rst.flags).toBe(Flag.RST);
    expect(await setup.session.ping()).toBeGreaterThan(0);
    expect(setup.session.streamCount).toBe(0);
  });

  it('ACK|FIN in one frame: the stream is established and its readable side ends', async () => {
    const setup = await againstRawPeer();
    const s = setup.session.open();
    s.write('request');
    setup.peer.send(encodeFrame(FrameType.WindowUpdate, Flag.ACK | Flag.FIN, s.id, 0));
    const data = await readAll(s);
    expect(data.length).toBe(0);
    // Still writable after the peer's FIN (half-close).
    s.end('more');
    const fin = await setup.peer.waitFor((f) => f.streamId === s.id && (f.flags & Flag.FIN) !== 0);
    expect(fin.type).toBe(FrameType.WindowUpdate);
    await until(() => setup.session.streamCount === 0);
  });

  it('data and FIN in one frame: the data is delivered before the end', async () => {
    const setup = await againstRawPeer();
    const s = setup.session.open();
    setup.peer.send(encodeFrame(FrameType.Data, Flag.ACK | Flag.FIN, s.id, 5, Buffer.from('hello')));
    expect((await readAll(s)).toString()).toBe('hello');
    s.end();
  });

  it('never sends more than the granted window, and never a second FIN', async () => {
    const setup = await againstRawPeer();
    const s = setup.session.open();
    setup.peer.send(encodeFrame(FrameType.WindowUpdate, Flag.ACK, s.id, 0));
    s.write(Buffer.alloc(1024 * 1024));
    await until(() => setup.peer.frames.filter((f) => f.type === FrameType.Data).length > 0);
    await new Promise((r) => setTimeout(r, 100));
    const sent = () =>
      setup.peer.frames.filter((f) => f.type === FrameType.Data).reduce((n, f) => n + f.payload.length, 0);
    expect(sent()).toBe(INITIAL_STREAM_WINDOW);
    // Grant exactly 1000 more bytes.
    setup.peer.send(encodeFrame(FrameType.WindowUpdate, 0, s.id, 1000));
    await until(() => sent() === INITIAL_STREAM_WINDOW + 1000);
    await new Promise((r) => setTimeout(r, 50));
    expect(sent()).toBe(INITIAL_STREAM_WINDOW + 1000);
    s.end();
    s.end();
    setup.peer.send(encodeFrame(FrameType.WindowUpdate, 0, s.id, 2 * 1024 * 1024));
    await setup.peer.waitFor((f) => f.streamId === s.id && (f.flags & Flag.FIN) !== 0);
    await new Promise((r) => setTimeout(r, 50));
    const fins = setup.peer.frames.filter((f) => f.streamId === s.id && f.flags & Flag.FIN);
    expect(fins).toHaveLength(1);
    expect(sent()).toBe(1024 * 1024);
  });

  it('a stalled reader holds at most one window for its stream', async () => {
    const setup = await againstRawPeer();
    const s = setup.session.open();
    s.pause();
    setup.peer.send(encodeFrame(FrameType.WindowUpdate, Flag.ACK, s.id, 0));
    const piece = Buffer.alloc(32 * 1024, 1);
    for (let i = 0; i < 8; i++) setup.peer.send(encodeFrame(FrameType.Data, 0, s.id, piece.length, piece));
    await until(() => s.stats().bytesIn === INITIAL_STREAM_WINDOW);
    await new Promise((r) => setTimeout(r, 50));
    expect(s.stats().bufferedIn).toBeLessThanOrEqual(INITIAL_STREAM_WINDOW);
    expect(setup.peer.frames.filter((f) => f.streamId === s.id && f.type === FrameType.WindowUpdate && !f.flags)).toHaveLength(0);
    // Reading re-opens the window.
    s.resume();
    const update = await setup.peer.waitFor((f) => f.streamId === s.id && f.type === FrameType.WindowUpdate && f.flags === 0);
    expect(update.length).toBeGreaterThanOrEqual(INITIAL_STREAM_WINDOW / 2);
    s.on('error', () => {});
  });
});
