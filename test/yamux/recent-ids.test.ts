import { describe, expect, it } from 'vitest';
import { RecentIds } from '../../src/yamux/recent-ids.js';

describe('RecentIds', () => {
  it('keeps the last `capacity` distinct ids, forgetting the oldest first', () => {
    const r = new RecentIds(3);
    for (const id of [1, 3, 3, 5]) r.add(id);
    expect([1, 3, 5, 7].map((id) => r.has(id))).toEqual([true, true, true, false]);
    r.add(7);
    expect([1, 3, 5, 7].map((id) => r.has(id))).toEqual([false, true, true, true]);
    for (const id of [9, 11]) r.add(id);
    expect([3, 5, 7, 9, 11].map((id) => r.has(id))).toEqual([false, false, true, true, true]);
  });
});
