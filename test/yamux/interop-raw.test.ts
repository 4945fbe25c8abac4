// What the spec allows but hashicorp/yamux never emits, from a raw-frame peer: ACK|FIN in one
// frame (a stream closed right after it was accepted), data with ACK|FIN, SYN|FIN with data;
// and a SYN after our GoAway.
import { describe, expect, it } from 'vitest';
import type { Session } from '../../src/yamux/index.js';
import { F, RawPeer, T, dataFrame, describeFrame, listenRaw, windowUpdate, type RawFrame } from '../helpers/frames.js';
import { ByteReader, endStream, writeChunk, type ServiceReport } from '../helpers/services.js';
import { connectSession, listenSessions, serviceOptions, waitUntil } from '../helpers/yamux-sessions.js';
import { perTest } from '../helpers/per-test.js';

const fx = perTest('kpw');
const { cleanups } = fx;

const onStream = (peer: RawPeer, id: number) => peer.frames.filter((f) => f.streamId === id).map((f) => describeFrame(f));
const fins = (frames: RawFrame[], id: number) => frames.filter((f) => f.streamId === id && f.flags & F.FIN).length;

async function clientAgainstRaw(): Promise<{ session: Session; peer: RawPeer }> {
  const path = fx.tmp.socket('raw');
  const raw = await listenRaw(path);
  cleanups.push(() => raw.close());
  const session = await connectSession(path, { role: 'client', config: { enableKeepAlive: false } });
  cleanups.push(() => session.destroy());
  return { session, peer: await raw.next() };
}

describe('raw-frame peer: frames hashicorp/yamux never sends', () => {
  it('ACK|FIN with data in one frame: we read the data, see the end, and can still write and FIN once', async () => {
    const { session, peer } = await clientAgainstRaw();
    const stream = session.open();
    const reader = new ByteReader(stream);
    const syn = await peer.waitFor((f) => f.type === T.WindowUpdate && (f.flags & F.SYN) !== 0, 2000, 'SYN');
    peer.send(dataFrame(syn.streamId, 'bye', F.ACK | F.FIN));
    expect((await reader.all()).toString()).toBe('bye');
    expect(stream.stats()).toMatchObject({ remoteFin: true, localFin: false });
    await writeChunk(stream, Buffer.from('after'));
    await endStream(stream);
    await peer.waitFor((f) => f.streamId === syn.streamId && (f.flags & F.FIN) !== 0, 2000, 'our FIN');
    await waitUntil(() => session.streamCount === 0, 'the stream is finished');
    expect(onStream(peer, syn.streamId)).toEqual([
      `WindowUpdate SYN #${syn.streamId} 0`,
      `Data - #${syn.streamId} 5 "after"`,
      `WindowUpdate FIN #${syn.streamId} 0`,
    ]);
    expect(stream.stats().state).toBe('closed');
  });

  it('WindowUpdate ACK|FIN right after the SYN, with our data already sent before the ACK', async () => {
    const { session, peer } = await clientAgainstRaw();
    const stream = session.open();
    const reader = new ByteReader(stream);
    await writeChunk(stream, Buffer.from('early'));
    const early = await peer.waitFor((f) => f.type === T.Data, 2000, 'early data');
    peer.send(windowUpdate(early.streamId, F.ACK | F.FIN));
    expect((await reader.all()).length).toBe(0);
    await endStream(stream);
    await peer.waitFor((f) => f.streamId === early.streamId && (f.flags & F.FIN) !== 0, 2000, 'our FIN');
    await new Promise((r) => setTimeout(r, 20));
    expect(fins(peer.frames, early.streamId)).toBe(1);
    expect(peer.frames.filter((f) => f.flags & F.RST)).toEqual([]);
    expect(session.streamCount).toBe(0);
    expect(session.closed).toBe(false);
  });

  it('SYN|FIN with data in one frame: our server serves it and FINs once', async () => {
    const path = fx.tmp.socket('ts');
    const reports: ServiceReport[] = [];
    const listener = await listenSessions(path, serviceOptions('server', reports));
    cleanups.push(() => listener.close());
    const peer = await RawPeer.connect(path);
    cleanups.push(() => peer.close());
    peer.send(dataFrame(1, 'echo\nhi', F.SYN | F.FIN));
    await peer.waitFor((f) => f.streamId === 1 && (f.flags & F.FIN) !== 0, 2000, 'FIN');
    await new Promise((r) => setTimeout(r, 20));
    expect(onStream(peer, 1)).toEqual(['WindowUpdate ACK #1 0', 'Data - #1 2 "hi"', 'WindowUpdate FIN #1 0']);
    expect(reports).toMatchObject([{ service: 'echo', in: 2, out: 2 }]);
    expect(listener.sessions[0]!.streamCount).toBe(0);
  });

  it('after our GoAway a SYN is answered with RST and the session stays up', async () => {
    const path = fx.tmp.socket('ts');
    const listener = await listenSessions(path, serviceOptions('server', []));
    cleanups.push(() => listener.close());
    const peer = await RawPeer.connect(path);
    cleanups.push(() => peer.close());
    const session = await listener.next();
    session.goAway();
    await peer.waitFor((f) => f.type === T.GoAway, 2000, 'GoAway');
    peer.send(windowUpdate(1, F.SYN));
    const rst = await peer.waitFor((f) => f.streamId === 1, 2000, 'answer to SYN');
    expect(describeFrame(rst)).toBe('WindowUpdate RST #1 0');
    expect(session.closed).toBe(false);
    expect(await session.ping()).toBeGreaterThanOrEqual(0);
  });
});
