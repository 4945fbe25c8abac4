// Live reload of host mode with tty guest channels: the new process opens each pod's device again
// (its queues belong to the device) once the old one stopped reading it and wrote out everything.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { openSerialChannel } from '../../src/channel/serial.js';
import { serveStream } from '../../src/sim/services.js';
import { Session } from '../../src/yamux/index.js';
import { perTest } from '../helpers/per-test.js';
import { HAVE_SOCAT, ptyPair } from '../helpers/pty.js';
import { control } from './helpers.js';
import { download, HostProcess, rpcLoop, upload, type Exchange } from './reload-helpers.js';

const t = perTest('kpt');
const PODS = 4;

/** The guest's end of a pod's tty: one yamux server session, the stream ids it was opened with. */
interface TtyGuest {
  session: Session;
  ids: number[];
  closed: () => boolean;
}

async function ttyGuest(path: string): Promise<TtyGuest> {
  const channel: Duplex = await openSerialChannel(path, 115200);
  t.cleanups.push(() => channel.destroy());
  const ids: number[] = [];
  const session = new Session(channel, {
    role: 'server',
    config: { enableKeepAlive: false },
    onStream: (stream) => {
      ids.push(stream.id);
      serveStream(stream);
    },
  });
  let closed = false;
  session.once('close', () => (closed = true));
  t.cleanups.push(() => session.destroy());
  return { session, ids, closed: () => closed };
}

describe.skipIf(!HAVE_SOCAT)('host reload with tty guest channels', () => {
  it(`${PODS} tty pods with checksummed transfers and request loops move through 3 reloads byte-exact`, async () => {
    const socket = t.tmp.socket('host');
    const host = new HostProcess(socket, ['host', '-control-socket', socket, '-state-file', t.tmp.file('pods.json'), '-log', 'info']);
    t.cleanups.push(() => host.kill());
    await host.ready();
    const guests: TtyGuest[] = [];
    for (let i = 0; i < PODS; i++) {
      const { a, b } = await ptyPair(t.tmp, t.cleanups, `tty${i}`);
      guests.push(await ttyGuest(b));
      const body = { listenSocket: `unix://${t.tmp.socket(`p-${i}`)}`, muxDevice: a, baud: 115200 };
      expect((await control(socket, 'PUT', `/pods/${i}?wait=serving`, body)).status).toBe(201);
    }
    const rounds = { n: 0, lastMs: [] as number[] };
    const loops: Exchange[] = [];
    const bulk: Exchange[] = [];
    for (let p = 0; p < PODS; p++) {
      const path = t.tmp.socket(`p-${p}`);
      for (let c = 0; c < 2; c++) loops.push(rpcLoop(path, `pod${p}-rpc${c}`, rounds));
      for (let c = 0; c < 2; c++) bulk.push(download(path, `pod${p}-down${c}`, 400_000, 1 + p * 10 + c));
      for (let c = 0; c < 2; c++) bulk.push(upload(path, `pod${p}-up${c}`, 400_000, 500 + p * 10 + c));
    }
    for (let r = 0; r < 3; r++) {
      await new Promise((res) => setTimeout(res, 100 + Math.floor(Math.random() * 300)));
      const answer = await host.reload();
      expect(answer.status, JSON.stringify(answer.json)).toBe(200);
      expect(answer.json).toMatchObject({ moved: PODS, stayed: [] });
    }
    expect(await host.firstExit).toBe(0);
    await Promise.all(bulk.map((b) => b.done));
    const at = rounds.n;
    await new Promise((res) => setTimeout(res, 200));
    for (const l of loops) l.stop();
    await Promise.all(loops.map((l) => l.done));
    expect([...loops, ...bulk].flatMap((e) => e.problems)).toEqual([]);
    expect(rounds.n).toBeGreaterThan(at);
    for (const g of guests) {
      expect(g.closed()).toBe(false);
      expect(g.session.stats()).toMatchObject({ remoteGoAway: false, localGoAway: false });
    }
    // The next stream of each session gets the old session's next id; nothing was reset.
    for (let p = 0; p < PODS; p++) {
      const s = net.connect(t.tmp.socket(`p-${p}`));
      const back: Buffer[] = [];
      s.on('data', (c: Buffer) => back.push(c));
      s.end('echo 3\nabc');
      await new Promise((r) => s.once('close', r));
      expect(Buffer.concat(back).toString()).toBe('abc');
      expect(guests[p]!.ids).toEqual(Array.from({ length: 7 }, (_, i) => 2 * i + 1));
    }
    const pods = (await control(socket, 'GET', '/pods')).json.pods as { id: string; state: string; connectionsServed: number }[];
    expect(pods.map((p) => [p.state, p.connectionsServed])).toEqual(Array.from({ length: PODS }, () => ['serving', 7]));
  }, 120_000);
});
