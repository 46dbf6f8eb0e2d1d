/** The timing helpers of bench/harness.ts that need no GPU: medians, timestamp-pair rejection, calls per pass. */
import { describe, expect, it } from 'vitest';
import { chooseInner, median, validPairs } from '../../bench/harness.js';

describe('bench harness helpers', () => {
  it('median of odd and even counts, unsorted input left alone', () => {
    const xs = [5, 1, 3];
    expect(median(xs)).toBe(3);
    expect(xs).toEqual([5, 1, 3]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  it('rejects zero and reversed timestamp pairs (docs/kernels.md §3.7)', () => {
    const stamps = [100n, 350n, 0n, 50n, 400n, 400n, 900n, 800n, 1000n, 0n, 7n, 10n];
    expect(validPairs(stamps)).toEqual([250, null, null, null, null, 3]);
  });

  it('chooses enough calls per pass to reach the target duration, within bounds', () => {
    const opts = { targetPassMs: 25, maxInner: 256 };
    expect(chooseInner(0.1, opts)).toBe(250); // 100 µs calls: 250 of them fill 25 ms (100 µs quantisation → 0.4 %)
    expect(chooseInner(0.01, opts)).toBe(256); // capped
    expect(chooseInner(30, opts)).toBe(1); // already long
    expect(chooseInner(0, opts)).toBe(256); // a zero reading: as many as allowed
    expect(chooseInner(5, { targetPassMs: 0, maxInner: 256 })).toBe(1);
  });
});
