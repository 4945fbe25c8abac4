// Every accepted client is served or closed: connections race a pod's end (its guest killed, as
// QEMU going away; `pod rm`; its per-pod handle going away) thousands of times, and each one sees its answer, EOF or an error
// within a second; none is left open and unanswered (a gRPC health check would hang to its deadline).
import { spawn } from 'node:child_process';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { podConfigFromJson } from '../../src/proxy/pod-settings.js';
import { GUESTS, type RunningGuest } from '../e2e/guests.js';
import { perTest } from '../helpers/per-test.js';
import { attachRaw, eventually, inProcessHost, podBody, type InProcessHost } from './helpers.js';

const t = perTest('kpr');
const ROUNDS = 80;
const CLIENTS = 24;
const ANSWER_MS = 1000;

type Outcome = 'answered' | 'eof' | 'error' | 'refused' | 'hung';

/** One request as a gRPC client makes it: no half-close, then wait for the answer, EOF or an error. */
function ask(path: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ path });
    const payload = Buffer.from('echo\nping-1234');
    let got = 0;
    let connected = false;
    const done = (o: Outcome) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(o);
    };
    // The clock starts at connect(): a pod that accepted the connection owes it an answer.
    const timer = setTimeout(() => done('hung'), ANSWER_MS);
    socket.once('connect', () => {
      connected = true;
      socket.write(payload);
    });
    socket.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= payload.length - 5) done('answered');
    });
    socket.once('end', () => done('eof'));
    socket.once('error', () => done(connected ? 'error' : 'refused'));
  });
}

/** Clients asking in a loop until the pod's socket refuses them (the pod is gone). */
async function askUntilGone(path: string, outcomes: Outcome[]): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const o = await ask(path);
    outcomes.push(o);
    if (o === 'refused' || o === 'hung') return;
  }
}

type Ending = 'guest killed' | 'pod rm' | 'guest killed, handle attached' | 'handle gone';
const ENDINGS: Ending[] = ['guest killed', 'pod rm', 'guest killed, handle attached', 'handle gone'];

async function round(h: InProcessHost, id: string, guest: RunningGuest, end: Ending, outcomes: Outcome[]): Promise<void> {
  await h.host.put(id, podConfigFromJson(podBody(t.tmp, id)), { waitServing: true });
  let link: Awaited<ReturnType<typeof attachRaw>> | null = null;
  if (end.includes('handle')) {
    const handle = spawn('sleep', ['30'], { stdio: 'ignore' });
    t.cleanups.push(() => handle.kill('SIGKILL'));
    link = await attachRaw(h.socket, id, handle.pid!);
    await eventually(() => link!.text().endsWith('attached\n'));
  }
  const path = t.tmp.socket(`p-${id}`);
  const clients = Array.from({ length: CLIENTS }, () => askUntilGone(path, outcomes));
  await new Promise((r) => setTimeout(r, Math.random() * 30));
  if (end === 'pod rm') await h.host.remove(id);
  else if (end === 'handle gone') link!.socket.destroy();
  else await guest.kill();
  await Promise.all(clients);
  if (link) await link.closed;
  await h.host.remove(id).catch(() => {}); // a pod whose guest went stays listed, ended
}

const CASES = GUESTS.filter((g) => g.available).flatMap((g) => [0, 2].map((threads) => ({ ...g, threads, where: threads ? `${threads} pod threads` : 'the main thread' })));

describe.each(CASES)('clients racing a pod\'s end, with $name, pods on $where', (kind) => {
  it(`${ROUNDS} pods ended while ${CLIENTS} clients connect: every client is answered or closed within ${ANSWER_MS} ms`, async () => {
    const h = await inProcessHost(t.tmp, kind.threads);
    t.cleanups.push(() => h.close());
    const outcomes: Outcome[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const id = `r${i}`;
      const guest = await kind.start({ mux: t.tmp.socket(`g-${id}`) });
      t.cleanups.push(() => guest.stop());
      await round(h, id, guest, ENDINGS[i % ENDINGS.length]!, outcomes);
    }
    const count = (o: Outcome) => outcomes.filter((x) => x === o).length;
    expect(count('hung')).toBe(0);
    expect(outcomes.length).toBeGreaterThan(ROUNDS * CLIENTS);
    expect(count('answered')).toBeGreaterThan(0);
    expect(count('answered') + count('eof') + count('error')).toBeGreaterThan(ROUNDS * CLIENTS);
    expect(await h.host.list()).toEqual([]);
  }, 240_000);
});
