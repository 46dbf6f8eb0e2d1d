/**
 * moeRoute on scores built by hand, each with an answer derivable on paper (docs/model.md §6.1–6.3, §12).
 * Inputs are router logits; `logit(s)` makes the sigmoid score exactly the chosen s (up to rounding).
 */
import { describe, expect, it } from 'vitest';
import { moeRoute, sigmoid, topK, type RouterConfig } from '../../src/model/router.js';

const logit = (s: number) => Math.log(s / (1 - s));
const logits = (scores: number[]) => scores.map(logit);

function cfg(over: Partial<RouterConfig> = {}): RouterConfig {
  return { n_routed_experts: 8, num_experts_per_tok: 2, n_group: 1, topk_group: 1, norm_topk_prob: true, routed_scaling_factor: 1, ...over };
}

function route(scores: number[], bias: number[], over: Partial<RouterConfig>) {
  const r = moeRoute(logits(scores), bias, cfg({ n_routed_experts: scores.length, ...over }));
  return { ids: Array.from(r.ids), weights: Array.from(r.weights) };
}

const zeros = (n: number) => new Array<number>(n).fill(0);

describe('moeRoute', () => {
  it('plain top-k (one group), weights normalised and scaled', () => {
    const s = [0.1, 0.9, 0.3, 0.8, 0.2, 0.5, 0.7, 0.4];
    const r = route(s, zeros(8), { routed_scaling_factor: 2.5 });
    expect(r.ids).toEqual([1, 3]);
    expect(r.weights[0]).toBeCloseTo((0.9 / 1.7) * 2.5, 14);
    expect(r.weights[1]).toBeCloseTo((0.8 / 1.7) * 2.5, 14);
  });

  it('normalises by the plain sum: the weights sum to routed_scaling_factor', () => {
    const r = route([0.1, 0.9, 0.3, 0.8], zeros(4), { num_experts_per_tok: 3, routed_scaling_factor: 2.827 });
    expect(r.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(2.827, 14);
  });

  it('norm_topk_prob off: weights are the raw sigmoid scores times the scaling factor', () => {
    const r = route([0.1, 0.9, 0.3, 0.8], zeros(4), { norm_topk_prob: false, routed_scaling_factor: 2 });
    expect(r.ids).toEqual([1, 3]);
    expect(r.weights[0]).toBeCloseTo(1.8, 14);
    expect(r.weights[1]).toBeCloseTo(1.6, 14);
  });

  it('ties: the lower index wins', () => {
    expect(route([0.5, 0.5, 0.5, 0.5], zeros(4), {}).ids).toEqual([0, 1]);
    expect(route([0.1, 0.9, 0.6, 0.2, 0.3, 0.6, 0.05, 0.4], zeros(8), {}).ids).toEqual([1, 2]);
    // an exact tie made by the bias: sigmoid(0) = 0.5, so b = [.5, .75, .75, .6]
    expect(Array.from(moeRoute([0, 0, 0, 0], [0, 0.25, 0.25, 0.1], cfg({ n_routed_experts: 4 })).ids)).toEqual([1, 2]);
  });

  it('the bias changes the selection but not the weights, and ids come by descending biased score', () => {
    const s = [0.6, 0.5, 0.4, 0.3];
    const bias = [0, 0, 0.5, 0];
    const r = route(s, bias, { routed_scaling_factor: 1.5 });
    expect(r.ids).toEqual([2, 0]); // biased 0.9, 0.6 (expert 1 would win without the bias)
    expect(r.weights[0]).toBeCloseTo((0.4 / 1.0) * 1.5, 14); // unbiased 0.4 and 0.6
    expect(r.weights[1]).toBeCloseTo((0.6 / 1.0) * 1.5, 14);
    expect(route(s, zeros(4), {}).ids).toEqual([0, 1]);
    const raw = route(s, bias, { norm_topk_prob: false });
    expect(raw.weights[0]).toBeCloseTo(0.4, 14);
    expect(raw.weights[1]).toBeCloseTo(0.6, 14);
  });

  it('group-limited: groups ranked by their top-2 sum (not their max), others masked', () => {
    // 4 groups of 2: sums .96, 1.2, 1.05, .5 → keep groups 1 and 2; expert 0 (the best single score) is masked
    const s = [0.95, 0.01, 0.6, 0.6, 0.5, 0.55, 0.3, 0.2];
    const r = route(s, zeros(8), { n_group: 4, topk_group: 2 });
    expect(r.ids).toEqual([2, 3]); // 0.6 = 0.6: lower index first
    expect(r.weights[0]).toBeCloseTo(0.5, 14);
    expect(r.weights[1]).toBeCloseTo(0.5, 14);
    const r3 = route(s, zeros(8), { n_group: 4, topk_group: 2, num_experts_per_tok: 3 });
    expect(r3.ids).toEqual([2, 3, 5]);
  });

  it('group masking is −inf: negative biased scores in kept groups still beat masked experts', () => {
    // b = [-.2, -.3, -.8, -.8]; group sums -.5 / -1.6 → keep group 0. A 0.0 mask would pick experts 2 and 3.
    const r = route([0.3, 0.2, 0.1, 0.1], [-0.5, -0.5, -0.9, -0.9], { n_group: 2, topk_group: 1 });
    expect(r.ids).toEqual([0, 1]);
    expect(r.weights[0]).toBeCloseTo(0.6, 14);
    expect(r.weights[1]).toBeCloseTo(0.4, 14);
  });

  it('group score ties: the lower group index wins', () => {
    expect(route([0.5, 0.4, 0.4, 0.5], zeros(4), { n_group: 2, topk_group: 1, num_experts_per_tok: 1 }).ids).toEqual([0]);
  });

  it('group selection uses biased scores', () => {
    // unbiased sums: .9 / .5; the bias lifts group 1 to 1.1 → experts 2, 3
    const r = route([0.5, 0.4, 0.25, 0.25], [0, 0, 0.3, 0.3], { n_group: 2, topk_group: 1 });
    expect(r.ids).toEqual([2, 3]);
    expect(r.weights[0]).toBeCloseTo(0.5, 14);
  });

  it('takes router logits: sigmoid(0) = 0.5', () => {
    expect(sigmoid(0)).toBe(0.5);
    const r = moeRoute([0, 0, 0, 0], [0, 0, 0, 0.1], cfg({ n_routed_experts: 4, norm_topk_prob: false }));
    expect(Array.from(r.ids)).toEqual([3, 0]);
    expect(Array.from(r.weights)).toEqual([0.5, 0.5]);
  });
});

describe('topK', () => {
  it('is a stable descending sort; −inf sorts last', () => {
    expect(topK([1, 3, 3, -Infinity, 2], 5)).toEqual([1, 2, 4, 0, 3]);
    expect(topK([-Infinity, -Infinity, 0], 3)).toEqual([2, 0, 1]);
  });
});
