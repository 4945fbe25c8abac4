// The reclaimer's schedule, with a fake collection, trim and memory read: a reclaim runs once pod
// ends stop, and only when the process grew enough since the last one. Its timers run on vitest's
// clock: with real ones a loaded machine that stalls the test past both delays at once ran the
// check between the collection and the trim.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryReclaimer, type MemoryUse } from '../../src/host/memory-reclaimer.js';

const MiB = 1024 * 1024;
const sleep = (ms: number) => vi.advanceTimersByTime(ms);

/** `calls`: the collections and trims, and what it reports (in upper case): a reclaim due, its outcome. */
function reclaimer(use: MemoryUse, canTrim = true) {
  const calls: string[] = [];
  const r = new MemoryReclaimer({
    collect: () => calls.push('collect'),
    trim: canTrim
      ? () => {
          calls.push('trim');
          return true;
        }
      : null,
    onDue: () => calls.push('DUE'),
    onReclaimed: (x) => calls.push(x.outcome.toUpperCase()),
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
    // Due once, skipped once: the two ends share the one check.
    expect(calls).toEqual(['DUE', 'SKIPPED']);
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
      expect(calls).toEqual(['DUE', 'collect', 'trim', 'TRIMMED']);
      // The base is what the process holds after that reclaim: 1 MiB more is not enough again.
      use[grown] += MiB;
      r.podEnded();
      sleep(60);
      expect(calls).toEqual(['DUE', 'collect', 'trim', 'TRIMMED', 'DUE', 'SKIPPED']);
      use[grown] += 2 * MiB;
      r.podEnded();
      sleep(60);
      expect(calls).toEqual(['DUE', 'collect', 'trim', 'TRIMMED', 'DUE', 'SKIPPED', 'DUE', 'collect', 'trim', 'TRIMMED']);
      r.stop();
    }
  });

  it('without a trim (no host add-on) it collects only, and reports that once the collection ran', () => {
    const use = { rss: 50 * MiB, heap: 10 * MiB };
    const { r, calls } = reclaimer(use, false);
    use.heap += 3 * MiB;
    r.podEnded();
    sleep(9);
    expect(calls).toEqual(['DUE']);
    sleep(51);
    expect(calls).toEqual(['DUE', 'collect', 'COLLECTED']);
    r.stop();
  });

  it('a pod that ends between the collection and the trim puts the trim off: one reclaim is due throughout, reported once', () => {
    const use = { rss: 50 * MiB, heap: 10 * MiB };
    const { r, calls } = reclaimer(use);
    use.rss += 3 * MiB;
    r.podEnded();
    sleep(12);
    expect(calls).toEqual(['DUE', 'collect']);
    r.podEnded();
    sleep(60);
    expect(calls).toEqual(['DUE', 'collect', 'collect', 'trim', 'TRIMMED']);
    r.stop();
  });
});
