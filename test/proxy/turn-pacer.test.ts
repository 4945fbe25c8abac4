import { describe, expect, it } from 'vitest';
import { LoopShare } from '../../src/proxy/turn-pacer.js';

/** Work that began `ms` ago (charged as such; no timing is measured here). */
const since = (ms: number) => performance.now() - ms;
/** The end of this loop turn: the share's check-phase callback has run. */
const nextTurn = () => new Promise((r) => setImmediate(r));

describe('LoopShare and its pods’ TurnPacers', () => {
  it('lets a pod work for its slice of a loop turn; a paused reader resumes in the check phase, with a fresh slice', async () => {
    const pacer = new LoopShare(1000).pacer();
    expect(pacer.charge(since(100))).toBe(true);
    expect(pacer.charge(since(1000))).toBe(false); // 1,100 ms used of 1,000
    const order: string[] = [];
    pacer.later(() => order.push('paced pod resumed'));
    expect(order).toEqual([]); // not within this turn
    await nextTurn();
    expect(order).toEqual(['paced pod resumed']);
    expect(pacer.charge(since(100))).toBe(true); // a new turn, a new slice
  });

  it('resumes every reader it paused, once each', async () => {
    const pacer = new LoopShare(1000).pacer();
    expect(pacer.charge(since(2000))).toBe(false);
    let resumed = 0;
    for (let i = 0; i < 3; i++) pacer.later(() => resumed++);
    await nextTurn();
    await nextTurn();
    expect(resumed).toBe(3);
  });

  it('a pod over its share reads one piece per turn and then waits while a neighbour that used far less reads: up to 3 turns, then it reads again', async () => {
    const share = new LoopShare(1000, 60_000);
    const bulk = share.pacer();
    const burst = share.pacer();
    bulk.charge(since(500));
    burst.charge(since(1));
    await nextTurn();
    // Over its share (500 ms recently against 1): its next read ends its slice.
    expect(bulk.charge(since(1))).toBe(false);
    let resumed = 0;
    const pause = () => bulk.later(() => resumed++);
    pause();
    for (let turn = 1; turn <= 3; turn++) {
      burst.charge(since(1)); // the neighbour reads in each of these turns
      await nextTurn();
      expect({ turn, resumed }).toEqual({ turn, resumed: 0 });
    }
    burst.charge(since(1));
    await nextTurn();
    expect(resumed).toBe(1); // slowed, never starved
    // Still over its share while the neighbour reads: held back again.
    expect(bulk.charge(since(1))).toBe(false);
    pause();
    burst.charge(since(1));
    await nextTurn();
    expect(resumed).toBe(1);
    // The neighbour stops reading: the pod resumes in the next turn, with a whole slice.
    await nextTurn();
    expect(resumed).toBe(2);
    expect(bulk.charge(since(1))).toBe(true);
  });

  it('nobody waits when the neighbour has used as much, or does not read in that turn', async () => {
    const share = new LoopShare(1000, 60_000);
    const a = share.pacer();
    const b = share.pacer();
    a.charge(since(500));
    b.charge(since(400));
    await nextTurn();
    expect(a.charge(since(1))).toBe(true); // 400 is not less than half of 500
    expect(a.charge(since(1000))).toBe(false); // its slice used up
    let resumed = 0;
    a.later(() => resumed++);
    b.charge(since(400)); // 800 against 1,501: still not less than half
    await nextTurn();
    expect(resumed).toBe(1);

    const alone = new LoopShare(1000, 60_000);
    const bulk = alone.pacer();
    alone.pacer().charge(since(1)); // a neighbour read once, a turn before
    await nextTurn();
    expect(bulk.charge(since(2000))).toBe(false);
    bulk.later(() => resumed++);
    await nextTurn();
    expect(resumed).toBe(2);
  });

  it("a pod's past work fades: once it has not read for a while it is not held back for it", async () => {
    const share = new LoopShare(1000, 1);
    const bulk = share.pacer();
    const neighbour = share.pacer();
    bulk.charge(since(5000));
    neighbour.charge(since(1));
    await nextTurn();
    await new Promise((r) => setTimeout(r, 30)); // 30 time constants: what both did is gone
    bulk.charge(since(100));
    neighbour.charge(since(90));
    await nextTurn();
    expect(bulk.charge(since(1))).toBe(true);
  });
});
