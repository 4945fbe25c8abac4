import { describe, expect, it } from 'vitest';
import { TurnPacer } from '../../src/proxy/turn-pacer.js';

const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

describe('TurnPacer', () => {
  it('lets a pod work for its slice of a loop turn; a paused reader resumes in the check phase, with a fresh slice', async () => {
    const pacer = new TurnPacer(2);
    const order: string[] = [];
    let t0 = performance.now();
    busy(1);
    expect(pacer.charge(t0)).toBe(true);
    t0 = performance.now();
    busy(1.5);
    expect(pacer.charge(t0)).toBe(false); // 2.5 ms used of 2
    pacer.later(() => order.push('paced pod resumed'));
    expect(order).toEqual([]); // not within this turn
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['paced pod resumed']);
    // A new turn, a new slice.
    t0 = performance.now();
    expect(pacer.charge(t0)).toBe(true);
  });

  it('resumes every reader it paused, once each', async () => {
    const pacer = new TurnPacer(0.01);
    const t0 = performance.now();
    busy(0.1);
    expect(pacer.charge(t0)).toBe(false);
    let resumed = 0;
    for (let i = 0; i < 3; i++) pacer.later(() => resumed++);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(resumed).toBe(3);
  });
});
