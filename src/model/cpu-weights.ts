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
  router: Matrix; // [E, D] router (mlp.gate.weight)
  bias: Float32Array; // [E] e_score_correction_bias
  experts: FfnWeights[]; // E × (F)
  shared: FfnWeights | null; // S·F wide, fused
}

/**
 * One decoder layer's weights. Leaf fields are named by the leaves' slots (model/weights.ts WeightSlot): `place`
 * puts the leaf of slot `s` at `layer[s]` (norms), `layer.attn[s]`, `layer.mlp[s]`, `layer.moe[s]` (router, bias),
 * `layer.moe.experts[e][s]` or `layer.moe.shared[s]`.
 */
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

/** A layer before its leaves are placed: the containers its leaves go into, every leaf field empty or null. */
function emptyLayerWeights(moe: boolean, routedExperts: number, shared: boolean): LayerWeights {
  const ffn = (): FfnWeights => ({ gate: emptyMatrix(), up: emptyMatrix(), down: emptyMatrix() });
  return {
    inputNorm: new Float32Array(0),
    attn: { qA: null, qANorm: null, qB: null, q: null, kvA: emptyMatrix(), kvANorm: new Float32Array(0), kvB: emptyMatrix(), o: emptyMatrix() },
    postNorm: new Float32Array(0),
    mlp: moe ? null : ffn(),
    moe: moe ? { router: emptyMatrix(), bias: new Float32Array(0), experts: Array.from({ length: routedExperts }, ffn), shared: shared ? ffn() : null } : null,
  };
}

function emptyMatrix(): Matrix {
  return { rows: 0, cols: 0, data: new Float32Array(0) };
}

/**
 * Reads and dequantises every leaf of the checkpoint's weight tree (model/weights.ts), in load order, and puts it
 * where its (role, layer, expert, slot) says: no tensor name is written here. A 2-D leaf becomes a Matrix, a 1-D
 * leaf a Float32Array.
 */
export async function loadCpuWeights(ckpt: Checkpoint): Promise<CpuWeights> {
  const c = ckpt.config;
  const w: CpuWeights = { config: c, embed: emptyMatrix(), layers: [], norm: new Float32Array(0), lmHead: emptyMatrix() };
  for (let i = 0; i < c.num_hidden_layers; i++) w.layers.push(emptyLayerWeights(c.derived.moeLayers[i]!, c.n_routed_experts, c.n_shared_experts > 0));
  for (const leaf of ckpt.weights) {
    const s = leaf.spec;
    if (s.kind === 'linear') {
      place(w, s, dequantLinear(await readStoredLinear(ckpt, leaf)));
    } else {
      const data = await readF32(ckpt, leaf);
      place(w, s, s.shape.length === 2 ? { rows: s.shape[0]!, cols: s.shape[1]!, data } : data);
    }
  }
  return w;
}

/**
 * Puts one loaded leaf where its position says: the role picks the container (the model for global leaves; the
 * layer for norms; its `attn` for attention; its `moe` for the router and its bias; `mlp`, `moe.experts[e]` or
 * `moe.shared` for an FFN) and the slot is the field's name there.
 */
function place(w: CpuWeights, s: WeightSpec, v: Matrix | Float32Array): void {
  const layer = s.layer < 0 ? null : w.layers[s.layer]!;
  const container: object | null | undefined =
    layer === null ? w
    : s.role === 'norm' ? layer
    : s.role === 'attention' ? layer.attn
    : s.role === 'router' || s.role === 'router_bias' ? layer.moe
    : s.role === 'dense_mlp' ? layer.mlp
    : s.role === 'routed_expert' ? layer.moe?.experts[s.expert!]
    : s.role === 'shared_expert' ? layer.moe?.shared
    : null;
  if (!container || !(s.slot in container)) throw new Error(`no place for the ${s.role} leaf '${s.name}' (slot ${s.slot})`);
  (container as Record<string, unknown>)[s.slot] = v;
}
