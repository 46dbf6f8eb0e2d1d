/**
 * Two algorithms against each other (style.md §9): absorbed MLA over the latent cache, with incremental
 * decoding and chunked prefill, against the naive full-sequence forward. In f64 they differ only by
 * summation order, so the bound is 1e-9 relative.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  attentionAbsorbed, attentionNaive, expandKv, ReferenceSession, referenceForward, type AttentionForm, type MlaShape,
} from '../../src/model/reference.js';
import type { Matrix } from '../../src/model/cpu-weights.js';
import { compareRows, goldenCases, GOLDEN_DIR, loadGolden, type Golden } from './reference-fixtures.js';
import { mulberry32 } from '../../src/random.js';

const RTOL = 1e-9;

/** Runs `tokens` through one session in chunks of the given sizes (the last chunk takes the rest): logits [T, V]. */
function chunked(g: Golden, form: AttentionForm, sizes: number[]): Float64Array {
  const s = new ReferenceSession(g.weights, form);
  const V = g.weights.config.vocab_size;
  const out = new Float64Array(g.prompt.length * V);
  let at = 0;
  for (const n of [...sizes, g.prompt.length]) {
    const end = Math.min(g.prompt.length, at + n);
    if (end <= at) continue;
    expect(s.position).toBe(at);
    out.set(s.prefill(g.prompt.slice(at, end)), at * V);
    at = end;
  }
  return out;
}

describe('absorbed + latent cache == naive full sequence', () => {
  describe.each(goldenCases())('%s', (name) => {
    let g: Golden;
    let naive: Float64Array;
    beforeAll(async () => {
      g = await loadGolden(name);
      naive = referenceForward(g.weights, g.prompt, { attention: 'naive' });
    });
    const check = (ours: Float64Array) => {
      const r = compareRows(ours, naive, g.weights.config.vocab_size, RTOL);
      expect(r.failures).toEqual([]);
      return r.maxRel;
    };

    it('prefill 3, then decode token by token', () => {
      const ones = Array.from({ length: g.prompt.length }, () => 1);
      const rel = check(chunked(g, 'absorbed', [3, ...ones]));
      console.log(`${name}: absorbed incremental vs naive, max relative ${rel.toExponential(2)}`);
    });

    it('absorbed prefill in chunks that do not start at 0', () => {
      check(chunked(g, 'absorbed', [5, 4, 2]));
    });

    it('naive form through the cache, in chunks', () => {
      check(chunked(g, 'naive', [1, 6]));
    });

    it('is causal: a prefix gives the prefix rows', () => {
      const k = Math.min(5, g.prompt.length);
      const prefix = referenceForward(g.weights, g.prompt.slice(0, k));
      const r = compareRows(prefix, naive.subarray(0, prefix.length), g.weights.config.vocab_size, 1e-12);
      expect(r.failures).toEqual([]);
    });
  });
});

/** A seeded generator (mulberry32), values in [-1, 1). */
function rng(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() * 2 - 1;
}

describe('attentionNaive == attentionAbsorbed (random, seeded)', () => {
  it.each([1, 2, 3])('seed %i, queries at positions that skip cached keys', (seed) => {
    const r = rng(seed);
    const s: MlaShape = { heads: 3, nope: 5, rope: 4, v: 7, rank: 6, scale: 0.3 };
    const T = 3;
    const S = 9;
    const fill = (n: number) => Float64Array.from({ length: n }, r);
    const qNope = fill(T * s.heads * s.nope);
    const qPe = fill(T * s.heads * s.rope);
    const cHat = fill(S * s.rank);
    const kPe = fill(S * s.rope);
    const kvB: Matrix = { rows: s.heads * (s.nope + s.v), cols: s.rank, data: Float32Array.from({ length: s.heads * (s.nope + s.v) * s.rank }, r) };
    const kPos = Array.from({ length: S }, (_, j) => j);
    const qPos = [0, 4, 8]; // sees 1, 5 and 9 keys
    const { kNope, v } = expandKv(cHat, kvB, s);
    const naive = attentionNaive(qNope, qPe, kNope, kPe, v, qPos, kPos, s);
    const absorbed = attentionAbsorbed(qNope, qPe, cHat, kPe, kvB, qPos, kPos, s);
    const cmp = compareRows(absorbed, naive, s.v, 1e-12);
    expect(cmp.failures, `seed ${seed}`).toEqual([]);
    // position 0 sees only key 0: its output is exactly v[0] for every head
    for (let h = 0; h < s.heads; h++) {
      for (let d = 0; d < s.v; d++) expect(naive[h * s.v + d]).toBeCloseTo(v[h * s.v + d]!, 14);
    }
  });
});
