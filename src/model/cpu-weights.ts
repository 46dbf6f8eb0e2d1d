/**
 * A checkpoint loaded for the CPU reference: every weight dequantised to f32 once (docs/model.md §8.2: FP8 × block
 * scale in f32, one rounding; INT4 (u - 8) × group scale, exact (docs/model.md §13); BF16 widened exactly; the router bias
 * as stored F32). Each leaf's format is the stored one (model/weights.ts). Memory is 4 bytes per
 * parameter, which is meant for toy checkpoints and kernel tests, not for Kimi K2 itself.
 *
 * Legend: D hidden, V vocab, H heads, Dq = Dn + Dr, Rq q_lora_rank, R kv_lora_rank, Dv v head dim,
 * I dense intermediate, F expert intermediate, S shared experts, E routed experts.
 */
import { dequantizeFp8Block } from '../format/fp8.js';
import { bf16ArrayToF32 } from '../format/fp8.js';
import { dequantizeInt4 } from '../format/int4.js';
import type { ModelConfig } from './config.js';
import { readF32, readStoredLinear, type Checkpoint, type StoredLinear } from './checkpoint.js';
import type { WeightSpec } from './weights.js';

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
  kvA: Matrix; // [R + Dr, D]
  kvANorm: Float32Array; // [R]
  kvB: Matrix; // [H·(Dn+Dv), R]
  o: Matrix; // [D, H·Dv]
}

export interface MoeWeights {
  gate: Matrix; // [E, D] router
  bias: Float32Array; // [E] e_score_correction_bias
  experts: FfnWeights[]; // E × (F)
  shared: FfnWeights | null; // S·F wide, fused
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

/**
 * Reads and dequantises every leaf of the checkpoint's weight tree (model/weights.ts), in load order, and puts it
 * where its (role, layer, expert, slot) says: no tensor name is written here.
 */
export async function loadCpuWeights(ckpt: Checkpoint): Promise<CpuWeights> {
  const c = ckpt.config;
  const empty = (): Matrix => ({ rows: 0, cols: 0, data: new Float32Array(0) });
  const ffn = (): FfnWeights => ({ gate: empty(), up: empty(), down: empty() });
  const w: CpuWeights = { config: c, embed: empty(), layers: [], norm: new Float32Array(0), lmHead: empty() };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const moe = c.derived.moeLayers[i]!;
    w.layers.push({
      inputNorm: new Float32Array(0),
      attn: { qA: null, qANorm: null, qB: null, q: null, kvA: empty(), kvANorm: new Float32Array(0), kvB: empty(), o: empty() },
      postNorm: new Float32Array(0),
      mlp: moe ? null : ffn(),
      moe: moe ? { gate: empty(), bias: new Float32Array(0), experts: Array.from({ length: c.n_routed_experts }, ffn), shared: c.n_shared_experts > 0 ? ffn() : null } : null,
    });
  }
  for (const leaf of ckpt.weights) {
    const s = leaf.spec;
    if (s.kind === 'linear') {
      place(w, s, dequantLinear(await readStoredLinear(ckpt, s.name)));
    } else {
      const data = await readF32(ckpt, s.name);
      place(w, s, s.shape.length === 2 ? { rows: s.shape[0]!, cols: s.shape[1]!, data } : data);
    }
  }
  return w;
}

/** Puts one loaded leaf where its role, layer, expert and slot say. */
function place(w: CpuWeights, s: WeightSpec, v: Matrix | Float32Array): void {
  const mat = (): Matrix => v as Matrix;
  const vec = (): Float32Array => v as Float32Array;
  if (s.layer < 0) {
    if (s.slot === 'embed') w.embed = mat();
    else if (s.slot === 'lmHead') w.lmHead = mat();
    else w.norm = vec();
    return;
  }
  const layer = w.layers[s.layer]!;
  switch (s.role) {
    case 'norm':
      if (s.slot === 'inputNorm') layer.inputNorm = vec();
      else layer.postNorm = vec();
      return;
    case 'attention':
      if (s.slot === 'qANorm' || s.slot === 'kvANorm') layer.attn[s.slot] = vec();
      else layer.attn[s.slot as 'qA' | 'qB' | 'q' | 'kvA' | 'kvB' | 'o'] = mat();
      return;
    case 'router':
      layer.moe!.gate = mat();
      return;
    case 'router_bias':
      layer.moe!.bias = vec();
      return;
    case 'dense_mlp':
      layer.mlp![s.slot as keyof FfnWeights] = mat();
      return;
    case 'routed_expert':
      layer.moe!.experts[s.expert!]![s.slot as keyof FfnWeights] = mat();
      return;
    case 'shared_expert':
      layer.moe!.shared![s.slot as keyof FfnWeights] = mat();
      return;
    default:
      throw new Error(`no place for the ${s.role} leaf '${s.name}'`);
  }
}
