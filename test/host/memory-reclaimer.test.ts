// The reclaimer's schedule, with a fake collection, trim and memory read: a reclaim runs once pod
// ends stop, and only when the process grew enough since the last one. Its timers run on vitest's
// clock: with real ones a loaded machine that stalls the test past both delays at once ran the
// check between the collection and the trim.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryReclaimer, type MemoryUse } from '../../src/host/memory-reclaimer.js';

const MiB = 1024 * 1024;
const sleep = (ms: number) => vi.advanceTimersByTime(ms);

function reclaimer(use: MemoryUse) {
  const calls: string[] = [];
  const r = new MemoryReclaimer({
    collect: () => calls.push('collect'),
    trim: () => {
      calls.push('trim');
      return true;
    },
    usage: () => ({ ...use }),
    quietMs: 10,
    trimDelayMs: 5,
    minGrowthBytes: 2 * MiB,
  });
  return { r, calls };
}

describe('MemoryReclaimer', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('skips the collection and the trim while the process grew less than the threshold since the last reclaim', () => {
    const use = { rss: 50 * MiB, heap: 10 * MiB };
    const { r, calls } = reclaimer(use);
    use.rss += MiB;
    use.heap += MiB;
    r.podEnded();
    r.podEnded();
    sleep(60);
    expect(calls).toEqual([]);
    r.stop();
  });

  it('collects then trims once pod ends stop, when resident memory or the heap grew by the threshold; the next one counts from there', () => {
    for (const grown of ['rss', 'heap'] as const) {
      const use = { rss: 50 * MiB, heap: 10 * MiB };
      const { r, calls } = reclaimer(use);
      use[grown] += 3 * MiB;
      r.podEnded();
      r.podEnded();
      sleep(60);
      expect(calls).toEqual(['collect', 'trim']);
      // The base is what the process holds after that reclaim: 1 MiB more is not enough again.
      use[grown] += MiB;
      r.podEnded();
      sleep(60);
      expect(calls).toEqual(['collect', 'trim']);
      use[grown] += 2 * MiB;
      r.podEnded();
      sleep(60);
      expect(calls).toEqual(['collect', 'trim', 'collect', 'trim']);
      r.stop();
    }
  });
});
