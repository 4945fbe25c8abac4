import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConnectionLostError,
  GoAwayCode,
  GoAwayError,
  SessionClosedError,
  StreamResetError,
  type Stream,
} from '../../src/yamux/index.js';
import { once, readAll, sessionPair, until } from '../helpers/yamux-pair.js';

// The behaviours of hashicorp/yamux's session_test.go, against our engine on both ends.

let cleanup: (() => void) | null = null;
afterEach(() => {
  cleanup?.();
  cleanup = null;
});

async function pair(...args: Parameters<typeof sessionPair>) {
  const p = await sessionPair(...args);
  cleanup = p.close;
  return p;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('Session (hashicorp session_test behaviours)', () => {
  it('ping measures a round trip', async () => {
    const { client, server } = await pair();
    const rtt = await client.ping();
    expect(rtt).toBeGreaterThan(0);
    expect(rtt).toBeLessThan(5000);
    expect(await server.ping()).toBeGreaterThan(0);
  });

  it('accept: streams opened by either side arrive in order with the right ids', async () => {
    const { client, server } = await pair();
    const a = client.open();
    const b = client.open();
    expect([a.id, b.id]).toEqual([1, 3]);
    a.write('a');
    b.write('b');
    const sa = await server.accept();
    const sb = await server.accept();
    expect([sa.id, sb.id]).toEqual([1, 3]);
    const c = server.open();
    expect(c.id).toBe(2);
    c.end('from server');
    const sc = await client.accept();
    expect((await readAll(sc)).toString()).toBe('from server');
  });

  it('close: ends the link, both sides see close, open() fails afterwards', async () => {
    const { client, server } = await pair();
    const serverClosed = once(server, 'close');
    await client.close();
    expect(client.closed).toBe(true);
    await serverClosed;
    expect(() => client.open()).toThrow(SessionClosedError);
  });

  it('many streams: 200 concurrent echoes with every byte checked', async () => {
    const { client, server } = await pair({}, { onStream: (s) => s.pipe(s) });
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const data = randomBytes(i * 997);
        const s = client.open();
        const reply = readAll(s);
        s.end(data);
        return sha(await reply) === sha(data);
      }),
    );
    expect(results.every(Boolean)).toBe(true);
    await until(() => client.streamCount === 0 && server.streamCount === 0);
  });

  it('half-close: after end() the stream still reads the reply', async () => {
    const { client } = await pair({}, {
      onStream: async (s) => {
        const got = await readAll(s);
        s.end(Buffer.concat([Buffer.from('got:'), got]));
      },
    });
    const s = client.open();
    s.end('question');
    expect((await readAll(s)).toString()).toBe('got:question');
  });

  it('backlog exceeded: a SYN past acceptBacklog is reset', async () => {
    const { client, server } = await pair({}, { config: { acceptBacklog: 2 } });
    const streams = [client.open(), client.open(), client.open()];
    const third = new Promise<Error>((resolve) => streams[2]!.once('error', resolve));
    streams.forEach((s) => s.write('x'));
    expect(await third).toBeInstanceOf(StreamResetError);
    expect((await server.accept()).id).toBe(1);
    expect((await server.accept()).id).toBe(3);
  });

  it('an opener never has more than acceptBacklog SYNs awaiting ACK, even after ACKed streams close', async () => {
    const config = { acceptBacklog: 2 };
    const { client, server } = await pair(config, { config });
    const [a, b] = [client.open(), client.open()];
    a.write('a');
    b.write('b');
    const acceptedA = await server.accept();
    acceptedA.end();
    acceptedA.resume();
    a.end();
    await until(() => client.streamCount === 1);
    // Only B awaits its ACK: one slot is free, so C goes out and D waits for B's ACK.
    const [c, d] = [client.open(), client.open()];
    const errors: Error[] = [];
    for (const s of [c, d]) {
      s.on('error', (e) => errors.push(e));
      s.write('x');
    }
    // The server answers the ping after every SYN before it, so a refusal would be here by now.
    await client.ping();
    expect(errors).toEqual([]);
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await server.accept()).id);
    expect(ids).toEqual([b.id, c.id, d.id]);
  });

  it('GoAway: no new streams either way, live streams finish', async () => {
    const { client, server } = await pair({}, { onStream: (s) => s.pipe(s) });
    const live = client.open();
    live.write('before');
    await until(() => server.streamCount === 1);
    const gotGoAway = once<number>(client, 'goaway');
    server.goAway();
    expect(await gotGoAway).toBe(GoAwayCode.Normal);
    expect(() => client.open()).toThrow(GoAwayError);
    expect(() => server.open()).toThrow(GoAwayError);
    const reply = readAll(live);
    live.end(' after');
    expect((await reply).toString()).toBe('before after');
  });

  it('large window: a bigger maxStreamWindowSize is announced and used', async () => {
    const window = 4 * 1024 * 1024;
    const { client, server } = await pair({}, { config: { maxStreamWindowSize: window } });
    const s = client.open();
    s.write('hi');
    const accepted = await server.accept();
    await until(() => s.stats().sendWindow === window - 2 || s.stats().sendWindow === window);
    accepted.destroy();
  });

  it('read after remote close: data sent before FIN is all readable', async () => {
    const { client, server } = await pair();
    const s = client.open();
    s.end(Buffer.alloc(100_000, 7));
    const accepted = await server.accept();
    await until(() => accepted.stats().remoteFin);
    const data = await readAll(accepted);
    expect(data.length).toBe(100_000);
    accepted.end();
  });

  it('reset read: a reset stream fails its reader with StreamResetError, not a clean end', async () => {
    const { client, server } = await pair();
    const s = client.open();
    s.write('x');
    const accepted = await server.accept();
    const failed = new Promise<Error>((resolve) => accepted.once('error', resolve));
    let ended = false;
    accepted.on('end', () => (ended = true));
    accepted.resume();
    s.reset();
    const err = await failed;
    expect(err).toBeInstanceOf(StreamResetError);
    expect(ended).toBe(false);
    await until(() => client.streamCount === 0 && server.streamCount === 0);
  });

  it('keepalive: pings flow on their own and a dead peer closes the session', async () => {
    const { client, server } = await pair({ enableKeepAlive: true, keepAliveInterval: 20, connectionWriteTimeout: 100 });
    await new Promise((r) => setTimeout(r, 120));
    expect(client.closed).toBe(false);
    // Stop the server from answering: its link stops being read.
    (server as unknown as { conn: { pause(): void } }).conn.pause();
    const [err] = await once<[Error]>(client, 'close').then((e) => [e as unknown as Error]);
    expect(err?.message).toMatch(/keepalive/);
  });

  it('keepalive with keepAliveCloseOnTimeout=false only reports missed pings', async () => {
    const { client, server } = await pair({
      enableKeepAlive: true,
      keepAliveInterval: 20,
      connectionWriteTimeout: 50,
      keepAliveCloseOnTimeout: false,
    });
    (server as unknown as { conn: { pause(): void } }).conn.pause();
    const err = await once<Error>(client, 'keepalive-timeout');
    expect(err.message).toMatch(/keepalive/);
    await new Promise((r) => setTimeout(r, 100));
    expect(client.closed).toBe(false);
  });

  it('large sends: 64 MiB through one stream, checked', async () => {
    const { client } = await pair({}, { onStream: (s) => s.pipe(s) });
    const block = randomBytes(1024 * 1024);
    const s = client.open();
    const hash = createHash('sha256');
    let received = 0;
    s.on('data', (c: Buffer) => {
      hash.update(c);
      received += c.length;
    });
    const done = once(s, 'end');
    const expected = createHash('sha256');
    for (let i = 0; i < 64; i++) {
      expected.update(block);
      if (!s.write(block)) await once(s, 'drain');
    }
    s.end();
    await done;
    expect(received).toBe(64 * 1024 * 1024);
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
  });

  it('write timeout: writes waiting on a link that never drains fail with a write timeout', async () => {
    const { client, server } = await pair({ connectionWriteTimeout: 200, maxFrameSize: 64 * 1024 });
    (server as unknown as { conn: { pause(): void } }).conn.pause();
    const streams = Array.from({ length: 32 }, () => client.open());
    const errors = streams.map((s) => new Promise<Error>((resolve) => s.once('error', resolve)));
    for (const s of streams) s.write(Buffer.alloc(256 * 1024));
    const first = await Promise.race(errors);
    expect((first as { code?: string }).code).toBe('ERR_YAMUX_WRITE_TIMEOUT');
  });

  it('a peer that stops reading (a paused VM) never turns our own queued frames into an error', async () => {
    const { client, server } = await pair({}, { onStream: (s) => s.pipe(s) });
    const serverLink = (server as unknown as { conn: { pause(): void; resume(): void } }).conn;
    serverLink.pause();
    const streams = Array.from({ length: 6000 }, () => client.open());
    for (const s of streams) s.end('x');
    await new Promise((r) => setTimeout(r, 200));
    expect(client.closed).toBe(false);
    serverLink.resume();
    const replies = await Promise.all(streams.slice(0, 50).map((s) => readAll(s)));
    expect(replies.every((r) => r.toString() === 'x')).toBe(true);
  });

  it('connection lost: live streams fail with ConnectionLostError, not a clean end', async () => {
    const { client, server } = await pair();
    const s = client.open();
    s.write('x');
    (await server.accept()).on('error', () => {});
    const failed = new Promise<Error>((resolve) => s.once('error', resolve));
    const closed = once<Error | undefined>(client, 'close');
    (server as unknown as { conn: { destroy(): void } }).conn.destroy();
    expect(await failed).toBeInstanceOf(ConnectionLostError);
    expect(await closed).toBeInstanceOf(ConnectionLostError);
  });

  it('graceful close waits for live streams to finish', async () => {
    const { client, server } = await pair({}, { onStream: (s) => s.pipe(s) });
    const s = client.open();
    const reply = readAll(s);
    s.write('one');
    await until(() => server.streamCount === 1);
    const closing = client.close(5000);
    s.end(' two');
    expect((await reply).toString()).toBe('one two');
    await closing;
    expect(client.closed).toBe(true);
  });

  it('rejectInbound answers every inbound SYN with RST', async () => {
    const { client, server } = await pair({}, {});
    const rejecting = client as unknown as { options: { rejectInbound: boolean } };
    rejecting.options.rejectInbound = true;
    const s: Stream = server.open();
    const err = new Promise<Error>((resolve) => s.once('error', resolve));
    s.write('hello');
    expect(await err).toBeInstanceOf(StreamResetError);
    expect(client.stats().rejected).toBe(1);
    expect(client.streamCount).toBe(0);
  });
});
