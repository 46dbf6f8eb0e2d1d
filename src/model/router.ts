/**
 * The MoE router, `noaux_tc` (docs/model.md §6.1–6.3 and the decisions of §12), for one token:
 *   s_e  = sigmoid(logit_e)                         unbiased scores: they give the weights
 *   b_e  = s_e + bias_e                             biased scores: used ONLY to select
 *   groups of E/G contiguous experts; group score = sum of its 2 largest b_e; keep the TG best groups
 *   b'_e = b_e in kept groups, −inf elsewhere;  Sel = the K largest b'_e
 *   w_e  = s_e / Σ_{Sel} s  (iff norm_topk_prob; plain sum, no +1e-20)  × routed_scaling_factor
 * Ties anywhere go to the lower index (a stable sort by descending score).
 *
 * Legend: E routed experts, G groups, TG groups kept, K experts per token.
 */
import type { ModelConfig } from './config.js';

export type RouterConfig = Pick<
  ModelConfig,
  'n_routed_experts' | 'num_experts_per_tok' | 'n_group' | 'topk_group' | 'norm_topk_prob' | 'routed_scaling_factor'
>;

export interface RouteResult {
  /** Selected experts, by descending biased score (ties: lower index first) // [K] */
  ids: Int32Array;
  /** Their combine weights, from the unbiased scores // [K] */
  weights: Float64Array;
}

export function sigmoid(z: number): number {
  return 1 / (1 + Math.exp(-z));
}

/**
 * Indices of the k largest values, largest first; equal values keep ascending index order. −inf entries sort
 * last (the caller guarantees k never reaches them: K ≤ TG·E/G).
 */
export function topK(values: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  idx.sort((a, b) => values[b]! - values[a]! || a - b); // NaN-free inputs; -inf - -inf is NaN → falls to a - b
  return idx.slice(0, k);
}

/** Routes one token. `logits` are the router's pre-sigmoid outputs x·gate.weight[e] // [E]; `bias` // [E]. */
export function moeRoute(logits: ArrayLike<number>, bias: ArrayLike<number>, c: RouterConfig): RouteResult {
  const E = c.n_routed_experts;
  const scores = new Float64Array(E); // s_e
  const biased = new Float64Array(E); // b_e, then b'_e
  for (let e = 0; e < E; e++) {
    scores[e] = sigmoid(logits[e]!);
    biased[e] = scores[e]! + bias[e]!;
  }
  if (c.n_group > 1) maskGroups(biased, c.n_group, c.topk_group);
  const sel = topK(biased, c.num_experts_per_tok);
  const weights = new Float64Array(sel.length);
  let sum = 0;
  for (const e of sel) sum += scores[e]!;
  const norm = c.norm_topk_prob ? sum : 1;
  sel.forEach((e, k) => (weights[k] = (scores[e]! / norm) * c.routed_scaling_factor));
  return { ids: Int32Array.from(sel), weights };
}

/** Sets b_e = −inf for every expert outside the TG groups with the largest top-2 sums (in place). */
function maskGroups(biased: Float64Array, groups: number, keep: number): void {
  const per = biased.length / groups;
  const groupScore = new Float64Array(groups); // [G]
  for (let g = 0; g < groups; g++) {
    const [a, b] = topK(biased.subarray(g * per, (g + 1) * per), 2);
    groupScore[g] = biased[g * per + a!]! + biased[g * per + b!]!;
  }
  const kept = new Set(topK(groupScore, keep));
  for (let g = 0; g < groups; g++) {
    if (!kept.has(g)) biased.fill(-Infinity, g * per, (g + 1) * per);
  }
}
