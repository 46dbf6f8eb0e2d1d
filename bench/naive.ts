/**
 * Launchers for the naive twins (shaders/*_naive.wgsl): the simplest correct WGSL for each
 * performance-critical kernel, kept so that `webmoe bench` measures the optimised kernels' speedup.
 * Each launcher checks its shapes, builds its pipelines and bind groups once, and returns an op whose
 * `encode(pass)` records its dispatches into an open compute pass (so the harness can repeat it many times
 * in one timed pass). Browser-safe: no Node imports.
 *
 * Legend: D hidden, F expert width, E experts, K experts per token, T tokens, H heads, S cached tokens,
 * R kv_lora_rank, W = R + Dr latent-cache width.
 */
import { ShapeError } from '../src/errors.js';
import type { GpuContext } from '../src/gpu/device.js';
import type { Kernels } from '../src/gpu/kernels.js';
import { fp8RowStrideWords, fp8StackLayout } from '../src/gpu/ops/fp8-layout.js';
import '../src/gpu/shaders-extra.gen.js'; // the naive twins and bench kernels (shaders/reference, shaders/bench)

/** Something the harness can record into a compute pass, any number of times. */
export interface EncodedOp {
  /** Records the op's dispatches (in order) into an open compute pass. */
  encode(pass: GPUComputePassEncoder): void;
  /** Dispatches per `encode` call. */
  readonly dispatches: number;
  /** Called before a submission is encoded (e.g. to reset a uniform arena). */
  prepare?(): void;
  /** Called after it is encoded, before submit (e.g. to flush the arena). */
  finish?(): void;
}

const WG = 64;

function checkBinding(gpu: GpuContext, what: string, bytes: number): void {
  if (bytes > gpu.limits.maxStorageBufferBindingSize) {
    throw new ShapeError(`${what}: ${bytes} bytes exceed maxStorageBufferBindingSize ${gpu.limits.maxStorageBufferBindingSize} (the naive twin does not split tensors)`);
  }
}

/** A dispatch by name (Kernels.prepare: bindings and Params checked against the WGSL once). */
interface Step {
  name: string;
  bind: Record<string, GPUBuffer>;
  params: Record<string, number>;
  grid: [number, number?];
}

function steps(kernels: Kernels, list: Step[]): EncodedOp {
  const prepared = list.map((s) => kernels.prepare(s.name, { constants: { WG }, bind: s.bind, params: s.params, grid: s.grid }));
  return {
    dispatches: prepared.length,
    encode(pass) {
      for (const p of prepared) p.encode(pass);
    },
  };
}

// ------------------------------------------------------------------------------------------------------------

export interface Fp8GemvBuffers {
  /** [rows, stride] codes in the padded-row layout (fp8-layout.ts) */
  w: GPUBuffer;
  /** [ceil(rows/128), ceil(cols/128)] f32 */
  scale: GPUBuffer;
  /** [cols] f32 ([T, cols] for the GEMM) */
  x: GPUBuffer;
  /** [rows] f32 ([T, rows] for the GEMM) */
  y: GPUBuffer;
}

/** y = W·x (fp8_gemv_naive.wgsl). */
export function naiveFp8Gemv(gpu: GpuContext, kernels: Kernels, b: Fp8GemvBuffers, rows: number, cols: number): EncodedOp {
  const stride = fp8RowStrideWords(cols);
  checkBinding(gpu, 'fp8_gemv_naive weight', rows * stride * 4);
  return steps(kernels, [
    { name: 'fp8_gemv_naive', bind: { w: b.w, scale: b.scale, x: b.x, y: b.y }, params: { rows, cols, scale_cols: Math.ceil(cols / 128), stride }, grid: [Math.ceil(rows / WG)] },
  ]);
}

/** Y = X·Wᵀ for T tokens (fp8_gemm_naive.wgsl). */
export function naiveFp8Gemm(gpu: GpuContext, kernels: Kernels, b: Fp8GemvBuffers, rows: number, cols: number, tokens: number): EncodedOp {
  const stride = fp8RowStrideWords(cols);
  checkBinding(gpu, 'fp8_gemm_naive weight', rows * stride * 4);
  return steps(kernels, [
    { name: 'fp8_gemm_naive', bind: { w: b.w, scale: b.scale, x: b.x, y: b.y }, params: { rows, cols, scale_cols: Math.ceil(cols / 128), tokens, stride }, grid: [Math.ceil(rows / WG), tokens] },
  ]);
}

// ------------------------------------------------------------------------------------------------------------

export interface MlaDecodeShape {
  heads: number; // H
  tokens: number; // S
  rank: number; // R
  rope: number; // Dr
  scale: number;
}

export interface MlaDecodeBuffers {
  /** [H, W] f32: [q_nope·W_UK | q_pe] per head */
  q: GPUBuffer;
  /** [S, W] f32: [c_kv | k_pe] per token */
  cache: GPUBuffer;
  /** [H, S] f32 scratch */
  p: GPUBuffer;
  /** [H, R] f32 */
  out: GPUBuffer;
}

/** Absorbed MLA decode over the latent cache: mla_scores_naive, mla_softmax_naive, mla_combine_naive. */
export function naiveMlaDecode(gpu: GpuContext, kernels: Kernels, b: MlaDecodeBuffers, s: MlaDecodeShape): EncodedOp {
  const width = s.rank + s.rope;
  checkBinding(gpu, 'mla_scores_naive cache', s.tokens * width * 4);
  const params = { heads: s.heads, tokens: s.tokens, width, rank: s.rank, scale: s.scale };
  return steps(kernels, [
    { name: 'mla_scores_naive', bind: { q: b.q, cache: b.cache, p: b.p }, params, grid: [Math.ceil(s.tokens / WG), s.heads] },
    { name: 'mla_softmax_naive', bind: { p: b.p }, params, grid: [Math.ceil(s.heads / WG)] },
    { name: 'mla_combine_naive', bind: { cache: b.cache, p: b.p, out: b.out }, params, grid: [Math.ceil(s.rank / WG), s.heads] },
  ]);
}

// ------------------------------------------------------------------------------------------------------------

export interface RouterShape {
  tokens: number; // T
  hidden: number; // D
  experts: number; // E
  topk: number; // K
  groups: number; // G
  topkGroup: number; // TG
  norm: boolean;
  scaling: number;
}

export interface RouterBuffers {
  /** [T, D] f32 */
  x: GPUBuffer;
  /** [E, D] bf16, 2 per u32 */
  gate: GPUBuffer;
  /** [E] f32 */
  bias: GPUBuffer;
  /** [T, E] f32 */
  logits: GPUBuffer;
  /** [T, K] u32 */
  ids: GPUBuffer;
  /** [T, K] f32 */
  weights: GPUBuffer;
}

/** Router logits + noaux_tc selection: moe_router_logits_naive, moe_router_select_naive. */
export function naiveRouter(gpu: GpuContext, kernels: Kernels, b: RouterBuffers, s: RouterShape): EncodedOp {
  if (s.experts % s.groups !== 0 || s.groups > 64 || s.topk > 32 || s.topkGroup > s.groups) {
    throw new ShapeError(`moe_router_select_naive: E ${s.experts} must divide into G ${s.groups} <= 64 groups, K ${s.topk} <= 32, TG ${s.topkGroup} <= G`);
  }
  const params = { tokens: s.tokens, hidden: s.hidden, experts: s.experts, topk: s.topk, groups: s.groups, topk_group: s.topkGroup, norm: s.norm ? 1 : 0, scaling: s.scaling };
  return steps(kernels, [
    { name: 'moe_router_logits_naive', bind: { x: b.x, gate: b.gate, logits: b.logits }, params, grid: [Math.ceil(s.experts / WG), s.tokens] },
    { name: 'moe_router_select_naive', bind: { bias: b.bias, logits: b.logits, ids: b.ids, weights: b.weights }, params, grid: [Math.ceil(s.tokens / WG)] },
  ]);
}

// ------------------------------------------------------------------------------------------------------------

export interface ExpertShape {
  hidden: number; // D
  inter: number; // F
  topk: number; // K
}

/** One shard of the expert stacks (fp8-layout.ts): experts first .. first + count - 1. */
export interface ExpertShard {
  first: number;
  count: number;
  /** gate_up codes [2 count, F, strideD] and scales */
  gu: GPUBuffer;
  guScale: GPUBuffer;
  /** down codes [count, D, strideF] and scales */
  dn: GPUBuffer;
  dnScale: GPUBuffer;
}

export interface ExpertBuffers {
  /** [D] f32 */
  x: GPUBuffer;
  /** [K] u32 */
  ids: GPUBuffer;
  /** [K] f32 */
  weights: GPUBuffer;
  /** [K, F] f32 scratch */
  h: GPUBuffer;
  /** [D] f32 */
  out: GPUBuffer;
  shards: ExpertShard[];
}

/** Routed experts for one token, ids read on the GPU: moe_gateup_id_naive + moe_down_id_naive per shard. */
export function naiveExperts(gpu: GpuContext, kernels: Kernels, b: ExpertBuffers, s: ExpertShape): EncodedOp {
  const strideD = fp8RowStrideWords(s.hidden);
  const strideF = fp8RowStrideWords(s.inter);
  const list = b.shards.flatMap((sh, i): Step[] => {
    checkBinding(gpu, `moe_gateup_id_naive shard ${i}`, fp8StackLayout(2 * sh.count, s.inter, s.hidden).codeBytes);
    checkBinding(gpu, `moe_down_id_naive shard ${i}`, fp8StackLayout(sh.count, s.hidden, s.inter).codeBytes);
    const params = { hidden: s.hidden, inter: s.inter, topk: s.topk, first: sh.first, count: sh.count, stride_d: strideD, stride_f: strideF, accumulate: i === 0 ? 0 : 1 };
    return [
      { name: 'moe_gateup_id_naive', bind: { x: b.x, ids: b.ids, gu: sh.gu, gu_s: sh.guScale, h: b.h }, params, grid: [Math.ceil(s.inter / WG), s.topk] },
      { name: 'moe_down_id_naive', bind: { ids: b.ids, weights: b.weights, dn: sh.dn, dn_s: sh.dnScale, h: b.h, out: b.out }, params, grid: [Math.ceil(s.hidden / WG)] },
    ];
  });
  return steps(kernels, list);
}
