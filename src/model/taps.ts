/**
 * Named taps: intermediates of the forward pass under the names of the golden fixtures'
 * `taps.safetensors`, shared by the CPU reference and the GPU engine, so a wrong logit can be traced to the
 * first tap where two implementations part (style.md §11).
 *
 *   embed                   [T, D] f64   token embeddings
 *   layers.{i}.attn_out     [T, D] f64   MLA output (after o_proj, before the residual add)
 *   layers.{i}.moe.input    [T, D] f64   post_attention_layernorm output of a MoE layer
 *   layers.{i}.moe.topk_idx [T, K] i64   selected experts, by descending biased score
 *   layers.{i}.moe.topk_weight [T, K] f64 their combine weights (normalised, × routed_scaling_factor)
 *   layers.{i}.ffn_out      [T, D] f64   dense MLP or MoE output (before the residual add)
 *   layers.{i}.hidden       [T, D] f64   residual stream after layer i
 *   final_norm              [T, D] f64   model.norm output (the lm_head input)
 */

export interface Tap {
  shape: number[];
  /** Float64Array for activations, Int32Array for expert ids (stored as I64 in safetensors). */
  data: Float64Array | Int32Array;
}

/** Where taps go: a Map filled by name (missing names were not produced, e.g. moe.* on a dense layer). */
export type TapMap = Map<string, Tap>;

export const tapNames = {
  embed: 'embed',
  attnOut: (i: number) => `layers.${i}.attn_out`,
  ffnOut: (i: number) => `layers.${i}.ffn_out`,
  hidden: (i: number) => `layers.${i}.hidden`,
  moeInput: (i: number) => `layers.${i}.moe.input`,
  moeTopkIdx: (i: number) => `layers.${i}.moe.topk_idx`,
  moeTopkWeight: (i: number) => `layers.${i}.moe.topk_weight`,
  finalNorm: 'final_norm',
} as const;

/** Records a copy of `data` (the caller may keep mutating its buffer). No-op without a map. */
export function recordTap(taps: TapMap | undefined, name: string, data: Float64Array | Int32Array, shape: number[]): void {
  if (taps) taps.set(name, { shape, data: data.slice() });
}
