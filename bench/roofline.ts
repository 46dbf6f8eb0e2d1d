/**
 * The bytes one decode step must read — the numerator of the decode roofline (docs/benchmarks.md):
 *   experts    per MoE layer the K selected routed experts + the shared expert (gate, up, down), per dense
 *              layer its MLP; FP8 codes (1 byte) + f32 block scales, or 2 bytes per weight for BF16 checkpoints
 *   attention  per layer q_a + q_b (or q_proj), kv_a, kv_b, o_proj, and the norms (f32 on the GPU)
 *   kv_cache   per layer the cached latent rows attended: S · (R + Dr) · 4 bytes (f32 cache)
 *   other      embedding row (BF16), router gates (BF16) + biases, final norm, lm_head (BF16)
 * Activations are not counted (they stay in cache-sized scratch). Divided by the measured streaming-read
 * bandwidth this is the fastest a step could possibly be on this device. Browser-safe; no GPU.
 *
 * Legend: D hidden, H heads, Dn/Dr/Dv, Dq = Dn + Dr, Rq, R, I dense width, F expert width, E, K, V vocab,
 * S cached tokens attended by the step (the new one included).
 */
import type { ModelConfig } from '../src/model/config.js';
import type { StepBytes } from './schema.js';

function linearBytes(c: ModelConfig, rows: number, cols: number): number {
  if (c.quantization_config?.quant_method !== 'fp8') return rows * cols * 2;
  const [br, bc] = c.quantization_config.weight_block_size;
  return rows * cols + Math.ceil(rows / br) * Math.ceil(cols / bc) * 4;
}

/** Bytes read by the decode step that attends over S cached tokens (S >= 1). */
export function decodeStepBytes(c: ModelConfig, S: number): StepBytes {
  const D = c.hidden_size;
  const H = c.num_attention_heads;
  const Dq = c.qk_nope_head_dim + c.qk_rope_head_dim;
  const R = c.kv_lora_rank;
  const Dr = c.qk_rope_head_dim;
  let attention = 0;
  let experts = 0;
  let other = 0;
  const ffn = (width: number) => 2 * linearBytes(c, width, D) + linearBytes(c, D, width);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    if (c.q_lora_rank) attention += linearBytes(c, c.q_lora_rank, D) + linearBytes(c, H * Dq, c.q_lora_rank) + 4 * c.q_lora_rank;
    else attention += linearBytes(c, H * Dq, D);
    attention += linearBytes(c, R + Dr, D) + linearBytes(c, H * (c.qk_nope_head_dim + c.v_head_dim), R) + linearBytes(c, D, H * c.v_head_dim);
    attention += 4 * (2 * D + R); // input / post-attention / kv_a norms
    if (c.derived.moeLayers[i]) {
      experts += c.num_experts_per_tok * ffn(c.moe_intermediate_size);
      if (c.n_shared_experts > 0) experts += ffn(c.n_shared_experts * c.moe_intermediate_size);
      other += 2 * c.n_routed_experts * D + 4 * c.n_routed_experts; // router gate (BF16) + bias
    } else {
      experts += ffn(c.intermediate_size);
    }
  }
  const kv_cache = c.num_hidden_layers * S * (R + Dr) * 4;
  other += 2 * D + 4 * D + 2 * c.vocab_size * D; // embedding row, final norm, lm_head
  return { experts, attention, kv_cache, other, total: experts + attention + kv_cache + other };
}
