/**
 * The offloading simulator: timelines worked out by hand, the limits (free link, everything resident), and the
 * accounting identities that every run must satisfy.
 */
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { simulate } from '../../src/offload/simulate.js';
import { syntheticTrace, uniformTrace, type RoutingTrace } from '../../src/offload/traces.js';

describe('simulate', () => {
  it('one layer, one slot, alternating experts: every token a miss, time worked out by hand', () => {
    const t: RoutingTrace = { experts: 2, topK: 1, layers: [0], tokens: [[[0]], [[1]], [[0]]] };
    const r = simulate(t, { slots: 1, policy: 'lru', uploadTime: 2, prefetch: false, expertBytes: 10, preload: false });
    // each token: upload 2, compute 1 -> 9 in all; all-resident: 3
    expect(r).toMatchObject({ misses: 3, demandHits: 0, stall: 6, time: 9, idealTime: 3, bytesStreamed: 30 });
    expect(r.speed).toBeCloseTo(1 / 3, 12);
  });

  it('two layers with a perfect lookahead: the second layer hits, its upload overlapped with the first', () => {
    const t: RoutingTrace = { experts: 4, topK: 1, layers: [0, 1], tokens: [[[0], [1]]] };
    const r = simulate(t, { slots: 1, policy: 'lru', uploadTime: 0.5, prefetch: { recall: 1 }, preload: false });
    // layer 0: miss, arrives at 0.5, computes to 1.5; layer 1's prefetch queued at 0 arrives at 1.0 < 1.5
    expect(r).toMatchObject({ misses: 1, demandHits: 1, latePrefetches: 0, prefetchesIssued: 1, prefetchesUsed: 1 });
    expect(r.time).toBeCloseTo(2.5, 12);
    expect(r.lookaheadRecall).toBe(1);
  });

  it('a prefetch still in flight when its layer starts is late, not a hit', () => {
    const t: RoutingTrace = { experts: 4, topK: 1, layers: [0, 1], tokens: [[[0], [1]]] };
    const r = simulate(t, { slots: 1, policy: 'lru', uploadTime: 2, prefetch: { recall: 1 }, preload: false });
    // layer 0: miss until 2, compute to 3; prefetch behind it arrives at 4: late, stall 1
    expect(r).toMatchObject({ misses: 1, latePrefetches: 1, demandHits: 0 });
    expect(r.stall).toBeCloseTo(3, 12);
  });

  it('a free link, or every expert preloaded, decodes at all-resident speed', () => {
    const t = syntheticTrace({ experts: 32, topK: 4, layers: 3, tokens: 100, seed: 2 });
    expect(simulate(t, { slots: 8, policy: 'lfu', uploadTime: 0 }).speed).toBe(1);
    const all = simulate(t, { slots: 32, policy: 'lfu', uploadTime: 1, prefetch: false });
    expect(all.speed).toBe(1);
    expect(all.hitRate).toBe(1);
  });

  it('accounting: every lookup is a hit, a late prefetch or a miss; prefetches are used, wasted or still resident', () => {
    const t = uniformTrace({ experts: 64, topK: 8, layers: 4, tokens: 200, seed: 9 });
    const r = simulate(t, { slots: 24, policy: 'lfu', uploadTime: 0.25, prefetch: { recall: 0.9, cap: 8 }, warmupTokens: 20 });
    expect(r.demandHits + r.latePrefetches + r.misses).toBe(r.lookups);
    expect(r.lookups).toBe(180 * 4 * 8);
    expect(r.prefetchesUsed + r.wastedPrefetches).toBeLessThanOrEqual(r.prefetchesIssued + 24 * 4);
    expect(r.lookaheadRecall).toBeGreaterThan(0.85);
    expect(r.lookaheadRecall).toBeLessThan(0.95);
  });

  it('locality pays: the same cache hits more often on a local trace than on uniform routing', () => {
    const opts = { slots: 32, policy: 'lfu' as const, uploadTime: 1, prefetch: false as const, warmupTokens: 50 };
    const local = simulate(syntheticTrace({ experts: 64, topK: 8, layers: 2, tokens: 400, seed: 1 }), opts);
    const uniform = simulate(uniformTrace({ experts: 64, topK: 8, layers: 2, tokens: 400, seed: 1 }), opts);
    expect(local.hitRate).toBeGreaterThan(uniform.hitRate + 0.2);
  });

  it('fewer slots than experts per token is an InputError naming both', () => {
    const t = uniformTrace({ experts: 16, topK: 4, layers: 1, tokens: 2 });
    expect(() => simulate(t, { slots: 3, policy: 'lru', uploadTime: 1 })).toThrow(InputError);
    expect(() => simulate(t, { slots: 3, policy: 'lru', uploadTime: 1 })).toThrow(/3 slots per layer cannot hold the 4 experts/);
  });
});
