// A pod thread whose loop a bulk upload keeps busy runs at a lower CPU priority while it does
// (threads/busy-priority.ts), and goes back when it is quiet: read off the kernel's own record
// of each thread (/proc/self/task/*/stat) and off /metrics.
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { describe, expect, it } from 'vitest';
import { mayLowerAndRestore } from '../../src/host/threads/busy-priority.js';
import { GUESTS } from '../e2e/guests.js';
import { echoChecked } from '../helpers/clients.js';
import { perTest } from '../helpers/per-test.js';
import { busyUploads, control, eventually, inProcessHost, podBody } from './helpers.js';

const t = perTest('kpn');
const GO_AGENT = GUESTS.find((g) => g.name === 'a hashicorp/yamux agent')!;
const NICE = 7;

/** The nice value of every thread of this process (field 19 of its stat). */
function threadNices(): number[] {
  const out: number[] = [];
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      out.push(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // A thread that ended meanwhile.
    }
  }
  return out;
}

async function lowered(socket: string): Promise<Record<string, number>> {
  const text = (await control(socket, 'GET', '/metrics')).text;
  return Object.fromEntries([...text.matchAll(/^kata_proxy_host_thread_lowered\{thread="(\d+)"\} (\d)$/gm)].map((m) => [m[1]!, Number(m[2])]));
}

describe('a busy pod thread lowers its CPU priority', () => {
  it.runIf(GO_AGENT.available && mayLowerAndRestore())('while a bulk upload keeps its loop busy, and back once it is quiet; its neighbour thread keeps its own', async () => {
    const base = getPriority(0);
    const h = await inProcessHost(t.tmp, 2, 0, NICE);
    t.cleanups.push(() => h.close());
    for (const id of ['bulk', 'quiet']) {
      const guest = await GO_AGENT.start({ mux: t.tmp.socket(`g-${id}`) });
      t.cleanups.push(() => guest.stop());
      expect((await control(h.socket, 'PUT', `/pods/${id}?wait=serving`, podBody(t.tmp, id))).status).toBe(201);
    }
    expect(await lowered(h.socket)).toEqual({ '1': 0, '2': 0 });
    expect(threadNices().filter((n) => n !== base)).toEqual([]);

    const load = busyUploads(t.tmp.socket('p-bulk'));
    // Stopped before the host closes, also when the test fails: no upload then finds it gone.
    t.cleanups.push(() => load.stop().catch(() => 0));
    // Thread 1 runs the bulk pod: lowered, by NICE exactly; thread 2 (the quiet pod's) is not.
    await eventually(async () => (await lowered(h.socket))['1'] === 1, 30_000, 'the bulk thread to lower its priority');
    expect(threadNices().filter((n) => n !== base)).toEqual([base + NICE]);
    expect((await lowered(h.socket))['2']).toBe(0);
    expect(await echoChecked(t.tmp.socket('p-quiet'), 10_000)).toBe(true);
    expect(await load.stop()).toBeGreaterThan(0);

    await eventually(async () => (await lowered(h.socket))['1'] === 0, 10_000, 'the thread to take its priority back');
    expect(threadNices().filter((n) => n !== base)).toEqual([]);
    expect(h.records.filter((l) => l.includes('cannot change its CPU priority'))).toEqual([]);
  }, 90_000);
});
