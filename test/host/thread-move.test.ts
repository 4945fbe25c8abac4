// Pods moving between a host's pod threads (Host.move, and the rebalancing that calls it): the
// guest and the clients notice nothing, and a thread a busy pod keeps hot sheds its quiet pods.
import { createHash, randomBytes } from 'node:crypto';
import type net from 'node:net';
import { describe, expect, it } from 'vitest';
import { chooseMove } from '../../src/host/threads/rebalance.js';
import { GUESTS } from '../e2e/guests.js';
import { connect, download, echoChecked } from '../helpers/clients.js';
import { sourceDigest } from '../helpers/data.js';
import { perTest } from '../helpers/per-test.js';
import { busyUploads, control, eventually, inProcessHost, podBody } from './helpers.js';

const t = perTest('kpm');
const GO_AGENT = GUESTS.find((g) => g.name === 'a hashicorp/yamux agent')!;

type Listed = { id: string; thread?: number; state: string };

async function threadsOf(socket: string): Promise<Record<string, number | undefined>> {
  const pods = (await control(socket, 'GET', '/pods')).json.pods as Listed[];
  return Object.fromEntries(pods.map((p) => [p.id, p.thread]));
}

/** An echo stream kept open: writes `chunks` pieces one after another, each awaited back whole. */
async function longEcho(path: string, chunks: number, size: number): Promise<boolean> {
  const socket: net.Socket = await connect(path);
  socket.write('echo\n');
  const sent = createHash('sha256');
  const got = createHash('sha256');
  let received = 0;
  socket.on('data', (c: Buffer) => {
    got.update(c);
    received += c.length;
  });
  for (let i = 0; i < chunks; i++) {
    const piece = randomBytes(size);
    sent.update(piece);
    socket.write(piece);
    await eventually(() => received >= (i + 1) * size, 20_000, 'the echo');
  }
  socket.end();
  return sent.digest('hex') === got.digest('hex');
}

describe('choosing a move', () => {
  it('moves the quietest pod of a hot thread to the least busy one, and nothing otherwise', () => {
    const pods = (...ids: [string, number][]) => ids.map(([id, bytes]) => ({ id, bytes }));
    expect(chooseMove([{ thread: 1, utilization: 0.9, pods: pods(['bulk', 9e8], ['n1', 1e4]) }, { thread: 2, utilization: 0.1, pods: pods(['n2', 1e4]) }])).toEqual({ id: 'n1', to: 2 });
    // Not hot enough, not enough of a difference, or alone on its thread: stays.
    expect(chooseMove([{ thread: 1, utilization: 0.4, pods: pods(['a', 9e8], ['b', 1]) }, { thread: 2, utilization: 0, pods: [] }])).toBeNull();
    expect(chooseMove([{ thread: 1, utilization: 0.9, pods: pods(['a', 9e8], ['b', 1]) }, { thread: 2, utilization: 0.8, pods: pods(['c', 9e8]) }])).toBeNull();
    expect(chooseMove([{ thread: 1, utilization: 0.95, pods: pods(['bulk', 9e8]) }, { thread: 2, utilization: 0.1, pods: pods(['x', 1], ['y', 1]) }])).toBeNull();
    expect(chooseMove([{ thread: 1, utilization: 1, pods: pods(['a', 1], ['b', 2]) }])).toBeNull();
    // A pod that cannot move now is passed over for the next quietest.
    const hot = [{ thread: 1, utilization: 0.9, pods: pods(['bulk', 9e8], ['stuck', 1], ['n1', 5]) }, { thread: 2, utilization: 0.1, pods: [] }];
    expect(chooseMove(hot, (id) => id !== 'stuck')).toEqual({ id: 'n1', to: 2 });
  });
});

describe('moving a pod between pod threads (POST /pods/ID/move)', () => {
  it('under traffic, back and forth: every byte intact, clients that connect meanwhile served', async () => {
    const h = await inProcessHost(t.tmp, 2);
    t.cleanups.push(() => h.close());
    for (const id of ['a', 'b']) {
      const guest = await GUESTS[0]!.start({ mux: t.tmp.socket(`g-${id}`) });
      t.cleanups.push(() => guest.stop());
      expect((await control(h.socket, 'PUT', `/pods/${id}?wait=serving`, podBody(t.tmp, id))).status).toBe(201);
    }
    expect(await threadsOf(h.socket)).toEqual({ a: 1, b: 2 });
    const path = t.tmp.socket('p-a');
    const long = longEcho(path, 40, 64 * 1024);
    let moving = true;
    const shortOnes = (async () => {
      const outcome = { ok: 0, failed: 0 };
      while (moving) {
        const intact = await echoChecked(path, 100_000).catch(() => false);
        outcome[intact ? 'ok' : 'failed']++;
      }
      return outcome;
    })();
    const where: (number | undefined)[] = [];
    for (let i = 0; i < 6; i++) {
      // A move waits 100 ms at most for the clients to read what the pod wrote; a busy test
      // process may take longer, and the pod then stays where it is (409) until the next try.
      const moved = await eventually(async () => {
        const r = await control(h.socket, 'POST', '/pods/a/move');
        if (r.status === 409) expect(r.json.code).toBe('cannot-move-now');
        return r.status === 200 ? r.json : undefined;
      }, 20_000, 'a move');
      where.push(moved.thread);
    }
    expect(where).toEqual([2, 1, 2, 1, 2, 1]);
    expect(await long).toBe(true);
    moving = false;
    const short = await shortOnes;
    expect(short.failed).toBe(0);
    expect(short.ok).toBeGreaterThan(0);
    expect(await echoChecked(t.tmp.socket('p-b'), 100_000)).toBe(true);
    // To its own thread: nothing to do; a thread that does not exist, an unknown pod: refused.
    expect(await control(h.socket, 'POST', '/pods/a/move?thread=1')).toMatchObject({ status: 200, json: { thread: 1 } });
    expect(await control(h.socket, 'POST', '/pods/a/move?thread=3')).toMatchObject({ status: 400, json: { code: 'bad-query' } });
    expect(await control(h.socket, 'POST', '/pods/a/move?thread=x')).toMatchObject({ status: 400 });
    expect(await control(h.socket, 'POST', '/pods/nope/move')).toMatchObject({ status: 404 });
    expect(await control(h.socket, 'GET', '/pods/a/move')).toMatchObject({ status: 405 });
    const moved = h.records.map((l) => JSON.parse(l) as { msg: string; sandbox?: string }).filter((r) => r.msg === 'pod moved to another thread');
    expect(moved.map((r) => r.sandbox)).toEqual(['a', 'a', 'a', 'a', 'a', 'a']);
    // The listen socket kept its path through every move, and goes with the pod.
    expect((await control(h.socket, 'DELETE', '/pods/a')).status).toBe(200);
    await expect(connect(path)).rejects.toThrow(/ENOENT/);
  }, 60_000);

  it.runIf(GO_AGENT.available)('with rebalancing on, a thread kept hot by bulk transfers sheds its quiet pod; a download through it stays intact', async () => {
    const h = await inProcessHost(t.tmp, 2, 500);
    t.cleanups.push(() => h.close());
    for (const id of ['bulk', 'other', 'quiet']) {
      const guest = await GO_AGENT.start({ mux: t.tmp.socket(`g-${id}`) });
      t.cleanups.push(() => guest.stop());
      expect((await control(h.socket, 'PUT', `/pods/${id}?wait=serving`, podBody(t.tmp, id))).status).toBe(201);
    }
    // By pod count: bulk and quiet share thread 1.
    expect(await threadsOf(h.socket)).toEqual({ bulk: 1, other: 2, quiet: 1 });
    // Uploads keep the thread hot; a download beside them is checked byte for byte.
    const uploads = busyUploads(t.tmp.socket('p-bulk'));
    let downloading = true;
    const downloads = (async () => {
      const size = 64 * 1024 * 1024;
      const want = sourceDigest(size, 7);
      let intact = 0;
      while (downloading) {
        const got = await download(t.tmp.socket('p-bulk'), size, 7);
        if (got.bytes === size && got.digest === want) intact++;
        else return -1;
      }
      return intact;
    })();
    const quietRequests = (async () => {
      let ok = 0;
      while (downloading) if (await echoChecked(t.tmp.socket('p-quiet'), 1000)) ok++;
      return ok;
    })();
    // Stopped before the host closes, also when the test fails: none then finds its socket gone.
    t.cleanups.push(async () => {
      downloading = false;
      await Promise.allSettled([uploads.stop(), downloads, quietRequests]);
    });
    // A move refused under load (a peer slow to read) is retried 30 s later: room for two.
    await eventually(async () => (await threadsOf(h.socket)).quiet === 2, 100_000, 'the quiet pod to leave the hot thread');
    downloading = false;
    expect(await uploads.stop()).toBeGreaterThan(0);
    expect(await downloads).toBeGreaterThan(0);
    expect(await quietRequests).toBeGreaterThan(0);
    expect(await threadsOf(h.socket)).toEqual({ bulk: 1, other: 2, quiet: 2 });
  }, 150_000);
});
