import { describe, expect, it } from 'vitest';
import { TurnPacer } from '../../src/proxy/turn-pacer.js';

/** Work that began `ms` ago (charged as such; no timing is measured here). */
const since = (ms: number) => performance.now() - ms;

describe('TurnPacer', () => {
  it('lets a pod work for its slice of a loop turn; a paused reader resumes in the check phase, with a fresh slice', async () => {
    const pacer = new TurnPacer(1000);
    expect(pacer.charge(since(100))).toBe(true);
    expect(pacer.charge(since(1000))).toBe(false); // 1,100 ms used of 1,000
    const order: string[] = [];
    pacer.later(() => order.push('paced pod resumed'));
    expect(order).toEqual([]); // not within this turn
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['paced pod resumed']);
    expect(pacer.charge(since(100))).toBe(true); // a new turn, a new slice
  });

  it('resumes every reader it paused, once each', async () => {
    const pacer = new TurnPacer(1000);
    expect(pacer.charge(since(2000))).toBe(false);
    let resumed = 0;
    for (let i = 0; i < 3; i++) pacer.later(() => resumed++);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(resumed).toBe(3);
  });
});
