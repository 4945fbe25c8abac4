// Pods in one host stay apart: while one pod's guest sends garbage, floods pings or stops
// reading, another pod (a real hashicorp/yamux guest) carries checksummed transfers untouched.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { echoChecked } from '../helpers/clients.js';
import { encodeFrame, F, T } from '../helpers/frames.js';
import { findGoPeer, startGoPeer } from '../helpers/go-peer.js';
import { perTest } from '../helpers/per-test.js';
import { control, eventually, inProcessHost, podBody } from './helpers.js';

const GO_PEER = await findGoPeer();
const t = perTest('kpi');

/** A fake guest: a Unix socket whose connections `onConnection` drives. */
async function badGuest(path: string, onConnection: (s: net.Socket) => void): Promise<void> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    onConnection(s);
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.cleanups.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
}

function pingFlood(socket: net.Socket): void {
  socket.on('error', () => {});
  socket.resume(); // reads (and drops) every answer: a flood, not a stall
  const burst = Buffer.concat(Array.from({ length: 512 }, (_, i) => encodeFrame(T.Ping, F.SYN, 0, i)));
  const pump = () => {
    while (!socket.destroyed && socket.write(burst));
    if (!socket.destroyed) socket.once('drain', pump);
  };
  pump();
}

describe.skipIf(!GO_PEER)('isolation of pods in one host', () => {
  it('garbage, a ping flood and a stalled guest on three pods; the fourth transfers every byte intact', async () => {
    const h = await inProcessHost(t.tmp);
    t.cleanups.push(() => h.close());
    const go = await startGoPeer(GO_PEER!, ['serve', '-listen', t.tmp.socket('g-good')]);
    t.cleanups.push(() => go.stop());
    await badGuest(t.tmp.socket('g-garbage'), (s) => {
      s.on('error', () => {});
      setTimeout(() => s.write(Buffer.from('this is not yamux at all\n')), 300);
    });
    await badGuest(t.tmp.socket('g-flood'), pingFlood);
    await badGuest(t.tmp.socket('g-stall'), (s) => {
      s.on('error', () => {});
      s.pause();
    });
    for (const id of ['good', 'garbage', 'flood', 'stall']) {
      const r = await control(h.socket, 'PUT', `/pods/${id}?wait=serving`, podBody(t.tmp, id));
      expect(r.status).toBe(201);
    }
    // The stalled pod's client pushes until back-pressure holds it.
    const stuck = net.connect(t.tmp.socket('p-stall'));
    stuck.on('error', () => {});
    t.cleanups.push(() => stuck.destroy());
    stuck.write('sink\n');
    const big = Buffer.alloc(1 << 20, 1);
    for (let i = 0; i < 8; i++) stuck.write(big);

    const sizes = [1 << 20, 3 << 20, 200_000, 0, 65_536, 2 << 20, 777_777, 1 << 20];
    const rounds = await Promise.all(sizes.map((n) => echoChecked(t.tmp.socket('p-good'), n)));
    expect(rounds).toEqual(sizes.map(() => true));

    const garbage = await eventually(async () => {
      const p = (await control(h.socket, 'GET', '/pods/garbage')).json;
      return p.state === 'stopped' ? p : undefined;
    });
    expect(garbage.end).toMatchObject({ reason: 'guest-ended', status: 3 });
    expect(garbage.end.error).toMatch(/version|protocol/i);
    const pods = Object.fromEntries((await control(h.socket, 'GET', '/pods')).json.pods.map((p: { id: string }) => [p.id, p]));
    expect(pods.good).toMatchObject({ state: 'serving', connectionsServed: sizes.length });
    expect(pods.stall).toMatchObject({ state: 'serving', clients: 1 });
    expect(pods.stall.bytesOut).toBeLessThan(8 << 20); // held by the window, not buffered without bound
    // The flooder was answered until it stopped reading or the cap ended it: either way only its pod.
    expect(['serving', 'stopped']).toContain(pods.flood.state);
    expect(go.errorLogs()).toEqual([]);
    expect(await echoChecked(t.tmp.socket('p-good'), 100_000)).toBe(true);
  });
});
