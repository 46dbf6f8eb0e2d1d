/**
 * What a GPU memory budget buys, computed from the config alone (`webmoe inspect --gpu-memory`): the resident part
 * (every weight but the routed experts, the latent KV cache, activations and scratch of one session), the expert
 * slots per MoE layer that the rest holds, and the bytes a decoded token streams at a stated hit rate.
 *
 * The byte counts follow the session's allocations (session.ts GpuSession, kv-cache.ts, ops/attention.ts and
 * ops/moe.ts scratch, expert-offload.ts slots); weights are counted as stored (inspect.ts gpuBytes) without the
 * row padding of unaligned shapes, so this is an estimate: test/engine/offload-plan.gpu.test.ts holds it within a
 * few percent of what a session allocates. The engine's own check at load is exact (session.ts slotsForBudget).
 *
 * Legend: E routed experts, K experts per token, S slots per layer, L MoE layers, Tc prefill chunk.
 */
import { InputError } from '../errors.js';
import { CPU_DECODE_SPLITS } from '../gpu/plan.js';
import type { ExpertFormat } from '../gpu/ops/fp8-layout.js';
import type { ModelConfig } from '../model/config.js';
import { stackedLatentWidth } from './weights-gpu.js';
import { gpuBytes } from '../model/inspect.js';
import { expertShape } from '../offload/expert-source.js';
import { offloadFixedBytes, slotBytes } from './expert-offload.js';

export interface OffloadPlan {
  budget: number;
  /** Weights that stay on the GPU: attention, dense MLPs, shared experts, routers, embeddings, norms. */
  residentWeights: number;
  kvCache: number;
  /** Activations, attention / MoE scratch, RoPE table, sampling buffers, uniform arena, offload buffers. */
  scratch: number;
  /** residentWeights + kvCache + scratch */
  fixed: number;
  /** GPU bytes of one routed expert (its slot) */
  expertBytes: number;
  moeLayers: number;
  experts: number;
  topK: number;
  slotsPerLayer: number;
  /** Every routed expert resident (slotsPerLayer = E). */
  allResident: boolean;
  /** The smallest budget that runs: fixed + K slots per layer. */
  minimumBudget: number;
}

const ARENA_BYTES = 4 << 20;

/**
 * The plan of `gpuMemory` bytes for `c` at context `ctxSize` (default as the session's); `decodeSplits` is the
 * device's decode key-split count (plan.ts decodeSplitRule; default 16, the CPU adapters' rule: a GPU's 64 adds
 * 48·H·(R + 2) floats, 6 MiB at Kimi K2 widths).
 */
export function planOffload(
  c: ModelConfig,
  opts: { gpuMemory: number; ctxSize?: number; chunkSize?: number; format?: ExpertFormat; maxBinding?: number; decodeSplits?: number },
): OffloadPlan {
  if (!Number.isFinite(opts.gpuMemory) || opts.gpuMemory <= 0) throw new InputError(`--gpu-memory must be a positive number of MiB, got ${opts.gpuMemory / 2 ** 20}`, 'gpuMemory');
  const moeLayers = c.derived.moeLayers.filter(Boolean).length;
  if (moeLayers === 0) throw new InputError('--gpu-memory: this model has no MoE layers, so there is nothing to offload', 'gpuMemory');
  const ctx = opts.ctxSize ?? Math.min(c.max_position_embeddings, 4096);
  const Tc = Math.max(1, Math.min(opts.chunkSize ?? 128, ctx));
  const maxBinding = opts.maxBinding ?? 128 * 2 ** 20;
  const format = opts.format ?? (c.quantization_config?.quant_method === 'compressed-tensors' ? 'int4' : c.quantization_config ? 'fp8' : 'bf16');
  const shape = expertShape(c, format);
  const all = gpuBytes(c);
  const E = c.n_routed_experts;
  // the stored routed experts ≈ their slots; what remains is resident
  const routedStored = moeLayers * E * shape.total;
  const residentWeights = Math.max(0, all.total - routedStored);
  const kvCache = c.num_hidden_layers * ctx * (c.kv_lora_rank + c.qk_rope_head_dim) * 4;
  const scratch = scratchBytes(c, ctx, Tc, opts.decodeSplits ?? CPU_DECODE_SPLITS.maxSplits) + offloadFixedBytes(c, Tc);
  const fixed = residentWeights + kvCache + scratch;
  const perLayer = (S: number) => slotBytes(shape, c, S, maxBinding);
  let S = 0;
  for (let s = E; s >= 1; s--) {
    if (fixed + moeLayers * perLayer(s) <= opts.gpuMemory) {
      S = s;
      break;
    }
  }
  return {
    budget: opts.gpuMemory,
    residentWeights,
    kvCache,
    scratch,
    fixed,
    expertBytes: shape.total,
    moeLayers,
    experts: E,
    topK: c.num_experts_per_tok,
    slotsPerLayer: S,
    allResident: S === E,
    minimumBudget: fixed + moeLayers * perLayer(c.num_experts_per_tok),
  };
}

/** Bytes a decoded token streams at demand hit rate `hitRate`: the misses of K experts in each MoE layer. */
export function streamedPerToken(p: OffloadPlan, hitRate: number): number {
  if (p.allResident) return 0;
  return Math.round(p.moeLayers * p.topK * (1 - hitRate) * p.expertBytes);
}

/** The activation and scratch buffers of one session (session.ts GpuSession's constructor), in bytes. */
function scratchBytes(c: ModelConfig, ctx: number, Tc: number, splits: number): number {
  const d = c.derived;
  const D = c.hidden_size;
  const H = c.num_attention_heads;
  const R = c.kv_lora_rank;
  const Lat = R + c.qk_rope_head_dim;
  const I = Math.max(c.intermediate_size, 1);
  const moe = d.moeLayers.some(Boolean);
  const K = c.num_experts_per_tok;
  const Ks = K + (c.n_shared_experts > 0 ? 1 : 0);
  const Fmax = Math.max(c.moe_intermediate_size, d.sharedIntermediate);
  const floats = [
    ctx, // tokens
    5 * Tc * D, // h, xn, attn_out, ffn_out, final_norm
    c.q_lora_rank ? Tc * stackedLatentWidth(c) + Tc * c.q_lora_rank : 0, // qa (q_a and kv_a stacked), qan
    Tc * d.qWidth + Tc * d.kvAWidth + Tc * d.oWidth,
    3 * Tc * I, // gate, up, swiglu
    moe ? Tc * (c.n_routed_experts + 2 * K) : 0, // router logits, ids, weights
    Tc * c.vocab_size, // logits
    Tc * H * (Lat + R), // prefill attention scratch
    H * (Lat + R) + splits * H * (R + 2), // decode attention scratch (plan.ts decodeSplitRule)
    moe ? Tc * Ks * Fmax : 0, // moe.hidden
    moe ? Tc * Ks * D : 0, // moe.y (grouped path, by-expert decode)
    ctx * c.qk_rope_head_dim, // RoPE cos/sin
    c.vocab_size + 8, // sampling
  ];
  const maxBlocks = Math.floor((Tc * K) / 16) + Math.min(c.n_routed_experts, Tc * K) + (c.n_shared_experts > 0 ? Math.ceil(Tc / 16) : 0);
  const plan = moe && Tc > 4 ? maxBlocks * 17 + 8 : 0;
  return floats.reduce((a, b) => a + b, 0) * 4 + plan * 4 + ARENA_BYTES;
}
