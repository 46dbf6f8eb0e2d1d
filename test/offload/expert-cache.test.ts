/**
 * ExpertCache as a specification: eviction orders worked out by hand for both policies, protection of kept
 * experts, determinism, and typed errors for bad input.
 */
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { ExpertCache } from '../../src/offload/expert-cache.js';

describe('ExpertCache', () => {
  it('fills free slots first, keeps a resident expert in its slot', () => {
    const c = new ExpertCache(8, 3, { policy: 'lru' });
    expect(c.admit(5)).toEqual({ expert: 5, slot: 0, evicted: null });
    expect(c.admit(2)).toEqual({ expert: 2, slot: 1, evicted: null });
    expect(c.admit(5)).toEqual({ expert: 5, slot: 0, evicted: null });
    expect(c.size).toBe(2);
    expect(c.slotOf(2)).toBe(1);
    expect(c.slotOf(3)).toBeUndefined();
  });

  it('lru evicts the least recently used expert', () => {
    const c = new ExpertCache(8, 2, { policy: 'lru' });
    c.admit(0);
    c.admit(1);
    c.use([0]); // step 0
    c.use([1]); // step 1: 0 is now the older one
    expect(c.admit(2)).toEqual({ expert: 2, slot: 0, evicted: 0 });
  });

  it('lfu keeps the frequently used expert over the recently used one', () => {
    const c = new ExpertCache(8, 2, { policy: 'lfu', decay: 0.95 });
    c.admit(0);
    c.admit(1);
    c.use([0]);
    c.use([0]);
    c.use([0]);
    c.use([1]); // 0: about 2.7 decayed uses, 1: one use, more recent
    expect(c.admit(2)?.evicted).toBe(1);
  });

  it('lfu forgets: a count decays with the steps since its last use', () => {
    const c = new ExpertCache(8, 2, { policy: 'lfu', decay: 0.5 });
    c.admit(0);
    c.admit(1);
    c.use([0]);
    c.use([0]); // 0 has 1.5 uses as of step 1
    for (let i = 0; i < 3; i++) c.use([1]); // 1 has 1.75 now; 0 has decayed to 1.5 · 0.5^3
    expect(c.admit(2)?.evicted).toBe(0);
  });

  it('never evicts a kept expert; null when every resident expert is kept', () => {
    const c = new ExpertCache(8, 2, { policy: 'lru' });
    c.admit(0);
    c.admit(1);
    c.use([0]);
    c.use([1]);
    expect(c.admit(2, new Set([0]))?.evicted).toBe(1);
    expect(c.admit(3, new Set([0, 2]))).toBeNull();
    expect(c.slotOf(3)).toBeUndefined();
  });

  it('ties go to the lower expert id, so two runs agree', () => {
    const run = () => {
      const c = new ExpertCache(16, 4, { policy: 'lfu' });
      const evicted: (number | null)[] = [];
      for (const e of [9, 3, 12, 7, 1, 4, 9, 15, 3]) evicted.push(c.admit(e)?.evicted ?? null);
      return evicted;
    };
    expect(run()).toEqual(run());
    const c = new ExpertCache(16, 2, { policy: 'lru' });
    c.admit(9);
    c.admit(3); // both never used: the lower id goes first
    expect(c.admit(5)?.evicted).toBe(3);
  });

  it('evict frees a slot for the next admission', () => {
    const c = new ExpertCache(4, 1);
    c.admit(1);
    c.evict(1);
    expect(c.admit(2)).toEqual({ expert: 2, slot: 0, evicted: null });
  });

  it('bad ids, slot counts, policies and decays are InputErrors', () => {
    expect(() => new ExpertCache(0, 1)).toThrow(InputError);
    expect(() => new ExpertCache(4, 0)).toThrow(InputError);
    expect(() => new ExpertCache(4, 1, { decay: 0 })).toThrow(InputError);
    // @ts-expect-error: an unknown policy from untyped input
    expect(() => new ExpertCache(4, 1, { policy: 'fifo' })).toThrow(/unknown policy 'fifo'/);
    const c = new ExpertCache(4, 2);
    expect(() => c.admit(4)).toThrow(/expert id 4 is outside 0..3/);
    expect(() => c.use([-1])).toThrow(InputError);
  });
});
