/**
 * A checkpoint loaded for the CPU reference: every weight dequantised to f32 once (spec §8.2: FP8 × block
 * scale in f32, one rounding; INT4 (u - 8) × group scale, exact (spec §13); BF16 widened exactly; the router bias
 * as stored F32). Each leaf's format is the stored one (model/weights.ts). Memory is 4 bytes per
 * parameter, which is meant for toy checkpoints and kernel tests, not for Kimi K2 itself.
 *
 * Legend: D hidden, V vocab, H heads, Dq = Dn + Dr, Rq q_lora_rank, Rkv kv_lora_rank, Dv v head dim,
 * I dense intermediate, Fm expert intermediate, S shared experts, E routed experts.
 */
import { dequantizeFp8Block } from '../format/fp8.js';
import { bf16ArrayToF32 } from '../format/fp8.js';
import { dequantizeInt4 } from '../format/int4.js';
import type { ModelConfig } from './config.js';
import { readF32, readStoredLinear, type Checkpoint, type StoredLinear } from './checkpoint.js';

/** A dense row-major weight, PyTorch layout: W[out, in], y = W·x. */
export interface Matrix {
  rows: number; // out
  cols: number; // in
  data: Float32Array; // [rows, cols]
}

/** One SwiGLU FFN: down(silu(gate·x) ⊙ up·x). */
export interface FfnWeights {
  gate: Matrix; // [F, D]
  up: Matrix; // [F, D]
  down: Matrix; // [D, F]
}

export interface AttnWeights {
  /** null when q_lora_rank is null (then `q` is set). */
  qA: Matrix | null; // [Rq, D]
  qANorm: Float32Array | null; // [Rq]
  qB: Matrix | null; // [H·Dq, Rq]
  q: Matrix | null; // [H·Dq, D]
  kvA: Matrix; // [Rkv + Dr, D]
  kvANorm: Float32Array; // [Rkv]
  kvB: Matrix; // [H·(Dn+Dv), Rkv]
  o: Matrix; // [D, H·Dv]
}

export interface MoeWeights {
  gate: Matrix; // [E, D] router
  bias: Float32Array; // [E] e_score_correction_bias
  experts: FfnWeights[]; // E × (Fm)
  shared: FfnWeights | null; // S·Fm wide, fused
}

export interface LayerWeights {
  inputNorm: Float32Array; // [D]
  attn: AttnWeights;
  postNorm: Float32Array; // [D]
  /** Exactly one of mlp / moe is set. */
  mlp: FfnWeights | null; // I wide
  moe: MoeWeights | null;
}

export interface CpuWeights {
  config: ModelConfig;
  embed: Matrix; // [V, D]
  layers: LayerWeights[];
  norm: Float32Array; // [D]
  lmHead: Matrix; // [V, D]
}

/** Dequantises one stored linear weight to f32 [rows, cols]. */
export function dequantLinear(w: StoredLinear): Matrix {
  const data =
    w.format === 'fp8' ? dequantizeFp8Block(w.data, w.scale, w.rows, w.cols)
    : w.format === 'int4' ? dequantizeInt4(w.data, w.scale, w.rows, w.cols, w.groupSize)
    : bf16ArrayToF32(w.data);
  return { rows: w.rows, cols: w.cols, data };
}

/** Reads and dequantises every weight the forward pass uses. */
export async function loadCpuWeights(ckpt: Checkpoint): Promise<CpuWeights> {
  const c = ckpt.config;
  const lin = async (name: string) => dequantLinear(await readStoredLinear(ckpt, name));
  const vec = (name: string) => readF32(ckpt, name);
  const mat = async (name: string, rows: number, cols: number): Promise<Matrix> => ({ rows, cols, data: await vec(name) });
  const ffn = async (p: string): Promise<FfnWeights> => ({
    gate: await lin(p + 'gate_proj.weight'),
    up: await lin(p + 'up_proj.weight'),
    down: await lin(p + 'down_proj.weight'),
  });
  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    const a = p + 'self_attn.';
    const lowRankQ = c.q_lora_rank !== null;
    const attn: AttnWeights = {
      qA: lowRankQ ? await lin(a + 'q_a_proj.weight') : null,
      qANorm: lowRankQ ? await vec(a + 'q_a_layernorm.weight') : null,
      qB: lowRankQ ? await lin(a + 'q_b_proj.weight') : null,
      q: lowRankQ ? null : await lin(a + 'q_proj.weight'),
      kvA: await lin(a + 'kv_a_proj_with_mqa.weight'),
      kvANorm: await vec(a + 'kv_a_layernorm.weight'),
      kvB: await lin(a + 'kv_b_proj.weight'),
      o: await lin(a + 'o_proj.weight'),
    };
    let moe: MoeWeights | null = null;
    if (c.derived.moeLayers[i]) {
      const experts: FfnWeights[] = [];
      for (let e = 0; e < c.n_routed_experts; e++) experts.push(await ffn(`${p}mlp.experts.${e}.`));
      moe = {
        gate: await mat(p + 'mlp.gate.weight', c.n_routed_experts, c.hidden_size),
        bias: await vec(p + 'mlp.gate.e_score_correction_bias'),
        experts,
        shared: c.n_shared_experts > 0 ? await ffn(p + 'mlp.shared_experts.') : null,
      };
    }
    layers.push({
      inputNorm: await vec(p + 'input_layernorm.weight'),
      attn,
      postNorm: await vec(p + 'post_attention_layernorm.weight'),
      mlp: moe ? null : await ffn(p + 'mlp.'),
      moe,
    });
  }
  return {
    config: c,
    embed: await mat('model.embed_tokens.weight', c.vocab_size, c.hidden_size),
    layers,
    norm: await vec('model.norm.weight'),
    lmHead: await mat('lm_head.weight', c.vocab_size, c.hidden_size),
  };
}
