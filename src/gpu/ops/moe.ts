/**
 * MoE on the GPU (docs/model.md §6): the router and the experts, driven by GPU-resident expert ids (no readback).
 *
 * Legend: T tokens, D hidden, E routed experts, K experts per token, G groups, TG groups kept,
 * F = moe_intermediate_size (routed expert width), Fs = S·F shared-expert width (0 = no shared expert),
 * Ks = K + (Fs > 0 ? 1 : 0) slots per token (slot K = the shared expert, weight 1), Fmax = max(F, Fs).
 *
 * Layouts (f32 unless said):
 *   logits   [T, E]        router logits x · gate.weight[e] (written by bf16_gemv, ops/linear.ts)
 *   bias     [E]           e_score_correction_bias
 *   ids      [T, K] u32    selected experts, by descending biased score (ties: lower index first)
 *   weights  [T, K]        combine weights (normalised iff norm_topk_prob, × routed_scaling_factor)
 *   x        [T, D]        post_attention_layernorm output
 *   out      [T, D]        out[t] = (accumulate ? out[t] : 0) + Σ_k w_k FFN_{e_k}(x_t) + FFN_shared(x_t)
 *                          (pass the residual stream with accumulate = true to fuse the residual add)
 *   expert weights (FP8, padded-row layout of fp8-layout.ts), per shard of experts [first, first + count):
 *     gateUp  stack of 2·count matrices [F, D]: matrix 2i = gate_proj of expert first+i, 2i+1 = its up_proj
 *             (fp8StackLayout(2·count, F, D)); scales likewise stacked
 *     down    stack of count matrices [D, F]   (fp8StackLayout(count, D, F))
 *     One shard holds all E experts unless the stack exceeds maxStorageBufferBindingSize (expertShards()).
 *   shared expert: gateUp stack of 2 matrices [Fs, D] (gate, up), down stack of 1 matrix [D, Fs].
 *   BF16 experts (checkpoints without quantization_config): the same stacks in the BF16 layout (2 codes per
 *     u32, bf16StackLayout, no scales). INT4 experts (Kimi K2-Thinking / K2.5, docs/model.md §13): 8 codes per u32,
 *     int4StackLayout, one f32 scale per row and 32 columns. Every expert kernel is a family with one body and
 *     one binding layout for all formats (shaders/include/format_*.wgsl: scripts/embed-shaders.ts makes
 *     STEM (FP8), STEM_bf16, STEM_int4; BF16 binds a dummy scales buffer); the launchers pick the instance by the
 *     stacks' format. The routed shards share one format; a shared expert in another format (INT4 routed + BF16
 *     shared, as Kimi ships) runs as its own dispatch pair after the routed ones (a second launch group,
 *     accumulating). Only FP8 has subgroup kernels: `variant: 'subgroup'` runs INT4's wide kernels and BF16's
 *     thread-per-row ones; BF16 runs thread-per-row unless 'wide' is asked for.
 *   hidden   [T, Ks, Fmax]  scratch: w_k · silu(gate·x) ⊙ (up·x) per (token, slot)
 *   grouped path scratch (MoeScratch): y [T, Ks, D] per-slot down outputs, plan (block → expert, sorted
 *            (token, slot) pairs), indirect dispatch arguments.
 *
 * Dispatches:
 *   moeRouter           1 dispatch (moe_router): sigmoid, +bias, group-limited top-K, weights.
 *   moeExpertsDecode    small T (decode): moe_gateup_id (grid F-tiles × Ks × T; each workgroup reads its
 *                       slot's expert id from `ids` and runs SwiGLU on that expert's rows; the shared expert is
 *                       slot K in the same dispatch) then moe_down_id (each output row sums all slots, adds the
 *                       residual). 2 dispatches per shard (1 shard: 2 in all). `variant: 'subgroup'` uses
 *                       moe_*_id_subgroup (a subgroup per row + subgroupAdd: coalesced loads on GPUs);
 *                       `variant: 'wide'` moe_*_id_wide (vec4 loads, 4 rows per thread, two codes per op via
 *                       unpack2x16float: the default on CPU adapters, 2.5-3.8x faster than thread-per-row
 *                       there). chooseMoeDecode picks.
 *   moeExpertsPrefill   large T: moe_align (count per expert, prefix sum padded to BM = 16-row blocks, scatter
 *                       (token, slot) pairs, write the indirect grids: vLLM's moe_align_block_size) →
 *                       moe_gateup_grouped (dispatchWorkgroupsIndirect; each block looks up its expert and a
 *                       thread runs one weight row over the block's pairs, 4 at a time, so each expert's rows
 *                       are read once per block, not once per token) → moe_down_grouped → moe_combine.
 *                       4 dispatches + 2 per extra shard. Only the valid pairs of a block are computed (a
 *                       Kimi K2 256-token chunk averages ~5 tokens per expert). `prefill: 'tiled'` (the plan's
 *                       choice, chooseMoePrefill) runs moe_gateup_tiled / moe_down_tiled instead: the same
 *                       contract and grids, RT weight rows per invocation against 4·TQ of a block's pairs whose
 *                       activations are staged in workgroup memory (2-6x the grouped kernels on CPU adapters).
 *   moeExperts          picks one of the two by T (decode path for T ≤ 4: measured faster there on lavapipe;
 *                       grouped from T = 32 up: 0.77 s vs 1.26 s for D 2048, F 512, 64 experts).
 * No launcher submits or reads back; all of them record into the caller's compute pass.
 *
 * CPU counterparts: model/router.ts moeRoute, model/reference.ts moe / ffn.
 */
import { adapterClass } from './adapter-class.js';
import { ShapeError } from '../../errors.js';
import { createBuffer, STORAGE, type UniformArena } from '../buffers.js';
import type { GpuContext } from '../device.js';
import type { Kernels } from '../kernels.js';
import { expertRowStrideWords, scaleColumns, stackLayout, type ExpertFormat } from './fp8-layout.js';
import { requireBytes, requireInt, requireSubgroupWorkgroup, weightFormat, type Buf, type WeightBuffers } from './binding.js';
import { stagedCapacity, stagedRowVec4 } from './staging.js';
import { unusedBuffer, unusedWritable } from './unused.js';
import { chooseMoePrefill, decodeVariantFor, MOE_SUBGROUP_TUNING, moeTiledTuning, moeWideTuning } from '../plan.js';

export interface MoeGeometry {
  hidden: number; // D
  experts: number; // E
  topK: number; // K
  inter: number; // F
  /** Fs = n_shared_experts · F; 0 when there is no shared expert */
  sharedInter: number;
}

export interface ExpertShardBuffers {
  first: number;
  count: number;
  gateUp: WeightBuffers; // stack of 2·count [F, D]
  down: WeightBuffers; // stack of count [D, F]
}

/** A layer's expert stacks: all FP8 (with scales) or all BF16 (`format: 'bf16'` on every stack). */
export interface MoeWeightBuffers {
  shards: ExpertShardBuffers[];
  shared: { gateUp: WeightBuffers; down: WeightBuffers } | null;
}

/** Largest E the router and the align kernel handle (workgroup arrays). */
export const MOE_MAX_EXPERTS = 512;
export const MOE_MAX_TOPK = 32;
export const MOE_MAX_GROUPS = 64;
/** Rows (token, slot pairs) per tile of the grouped GEMMs; expert segments are padded to it. */
export const MOE_BLOCK_M = 16;
const GROUPED_ROWS = 64; // weight rows per workgroup of the grouped GEMMs (moe_*_grouped.wgsl WG)

export function slotsPerToken(g: MoeGeometry): number {
  return g.topK + (g.sharedInter > 0 ? 1 : 0);
}

// ------------------------------------------------------------------------------------------------------------
// Router

export interface MoeRouterArgs {
  logits: Buf; // [T, E] f32
  bias: Buf; // [E] f32
  ids: Buf; // [T, K] u32 (written)
  weights: Buf; // [T, K] f32 (written)
  tokens: number;
  experts: number; // E
  topK: number; // K
  groups: number; // G (n_group)
  topkGroups: number; // TG (topk_group)
  normTopkProb: boolean;
  scaling: number; // routed_scaling_factor
  /**
   * The gate GEMV and its RMSNorm in the router's dispatch (moe_router.wgsl GATE): `logits` is then not read, the
   * logits are computed from `h` and the BF16 gate weight, and the normalised rows are written to `xn`.
   */
  gate?: MoeRouterGate;
}

/** moe_router's GATE inputs: see MoeRouterArgs.gate. */
export interface MoeRouterGate {
  h: Buf; // [T, D] f32, the residual stream
  codes: GPUBuffer; // BF16 [E, strideWords · 2] (ops/linear.ts upload layout, one chunk)
  strideWords: number;
  norm: GPUBuffer; // f32 [D] post_attention_layernorm
  eps: number;
  xn: Buf; // [T, D] f32 (written)
  hidden: number; // D
}

/** Workgroup memory moe_router uses for E experts (score, biased: MAX_E each; gscore, gkeep, sel; rms_inv's) and, with GATE, a hidden size D (xs: MAX_D). */
function routerWorkgroupBytes(E: number, D: number, wg: number): number {
  const roundUp64 = (n: number) => Math.ceil(n / 64) * 64;
  return 4 * (2 * roundUp64(E) + 2 * MOE_MAX_GROUPS + MOE_MAX_TOPK + wg + 1 + (D > 0 ? roundUp64(D) : 0));
}

/** Whether moe_router's GATE takes hidden size D with E experts here: its workgroup copy of xn fits the device's workgroup memory. */
export function routerGateFits(k: Kernels, hidden: number, experts: number): boolean {
  return routerWorkgroupBytes(experts, hidden, 64) <= k.gpu.limits.maxComputeWorkgroupStorageSize;
}

export function moeRouter(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: MoeRouterArgs): void {
  const name = 'moe_router';
  const { tokens: T, experts: E, topK: K, groups: G, topkGroups: TG } = a;
  requireInt(T, 1, name, 'tokens', k.gpu.limits.maxComputeWorkgroupsPerDimension);
  requireInt(E, 1, name, 'experts', MOE_MAX_EXPERTS);
  requireInt(G, 1, name, 'groups', MOE_MAX_GROUPS);
  requireInt(TG, 1, name, 'topkGroups', G);
  if (E % G !== 0 || (G > 1 && E / G < 2)) throw new ShapeError(`${name}: ${E} experts do not split into ${G} groups of ≥ 2`, 'groups', G, E);
  requireInt(K, 1, name, 'topK', Math.min(MOE_MAX_TOPK, (TG * E) / G));
  const g = a.gate;
  if (!g) requireBytes(k.gpu, a.logits, T * E * 4, name, 'logits');
  requireBytes(k.gpu, a.bias, E * 4, name, 'bias');
  requireBytes(k.gpu, a.ids, T * K * 4, name, 'ids');
  requireBytes(k.gpu, a.weights, T * K * 4, name, 'weights');
  const WG = 64;
  const spare = unusedBuffer(k);
  let gate = { h: spare as Buf, gate: spare as Buf, nw: spare as Buf, xn: unusedWritable(k) as Buf };
  let D = 0;
  if (g) {
    D = g.hidden;
    requireInt(D, 1, name, 'hidden');
    if (!routerGateFits(k, D, E)) {
      throw new ShapeError(`${name}: GATE needs ${routerWorkgroupBytes(E, D, WG)} bytes of workgroup memory for hidden ${D} and ${E} experts, more than maxComputeWorkgroupStorageSize ${k.gpu.limits.maxComputeWorkgroupStorageSize}; route with the gate GEMV first`, 'hidden');
    }
    if (g.strideWords < Math.ceil(D / 2)) throw new ShapeError(`${name}: gate rows of ${g.strideWords} words cannot hold ${D} BF16 codes`, 'strideWords', Math.ceil(D / 2), g.strideWords);
    requireBytes(k.gpu, g.h, T * D * 4, name, 'h');
    requireBytes(k.gpu, g.codes, E * g.strideWords * 4, name, 'gate');
    requireBytes(k.gpu, g.norm, D * 4, name, 'nw');
    requireBytes(k.gpu, g.xn, T * D * 4, name, 'xn');
    gate = { h: g.h, gate: g.codes, nw: g.norm, xn: g.xn };
  }
  // workgroup arrays sized to E and D (SwiftShader's compile time grows with array sizes)
  k.run(pass, arena, name, {
    constants: { WG, MAX_E: Math.ceil(E / 64) * 64, ...(g ? { GATE: 1, MAX_D: Math.ceil(D / 64) * 64, EPS: g.eps } : {}) },
    bind: { logits: g ? spare : a.logits, bias: a.bias, ids: a.ids, weights: a.weights, ...gate },
    params: { T, E, K, G, TG, norm: a.normTopkProb ? 1 : 0, scaling: a.scaling, D, gStride: g?.strideWords ?? 0 },
    grid: [T],
  });
}

// ------------------------------------------------------------------------------------------------------------
// Experts

export interface MoeScratch {
  maxTokens: number;
  /** [maxTokens, Ks, Fmax] */
  hidden: GPUBuffer;
  /** [maxTokens, Ks, D] the per-slot expert outputs: the grouped path and the by-expert decode path (moe_combine sums them) */
  y: GPUBuffer;
  /** grouped path only: [maxBlocks] block → expert (E = shared), then [maxBlocks · BM] sorted pairs t·Ks + k */
  plan: GPUBuffer | null;
  /** grouped path only: two indirect grids (gate_up at byte 0, down at byte 16) */
  indirect: GPUBuffer | null;
  maxBlocks: number;
}

/** Upper bound of BM-row blocks for T tokens: Σ_e ⌈c_e / BM⌉ ≤ ⌊T·K / BM⌋ + min(E, T·K) (+ shared blocks). */
export function maxExpertBlocks(g: MoeGeometry, T: number): number {
  const pairs = T * g.topK;
  return Math.floor(pairs / MOE_BLOCK_M) + Math.min(g.experts, pairs) + (g.sharedInter > 0 ? Math.ceil(T / MOE_BLOCK_M) : 0);
}

/** Scratch for up to maxTokens tokens; `grouped` allocates the prefill path's buffers too. */
export function createMoeScratch(gpu: GpuContext, g: MoeGeometry, maxTokens: number, grouped = true): MoeScratch {
  const Ks = slotsPerToken(g);
  const Fmax = Math.max(g.inter, g.sharedInter);
  const maxBlocks = maxExpertBlocks(g, maxTokens);
  const INDIRECT = 0x0100;
  return {
    maxTokens,
    maxBlocks,
    hidden: createBuffer(gpu, maxTokens * Ks * Fmax * 4, 'moe.hidden'),
    // the per-slot outputs: the grouped path and the by-expert decode path (variant 'union') write them
    y: createBuffer(gpu, maxTokens * Ks * g.hidden * 4, 'moe.y'),
    plan: grouped ? createBuffer(gpu, maxBlocks * (1 + MOE_BLOCK_M) * 4, 'moe.plan') : null,
    indirect: grouped ? createBuffer(gpu, 32, 'moe.indirect', STORAGE | INDIRECT) : null,
  };
}

export interface MoeExpertsArgs {
  x: Buf; // [T, D]
  ids: Buf; // [T, K] u32
  weights: Buf; // [T, K] f32
  out: Buf; // [T, D]
  /** out += instead of out = (fuses the residual add) */
  accumulate: boolean;
  tokens: number;
  geometry: MoeGeometry;
  w: MoeWeightBuffers;
  scratch: MoeScratch;
  /**
   * Decode-path kernels: 'f32' (a thread per weight row, moe_gateup_id / moe_down_id), 'subgroup' (a subgroup
   * per row, contiguous loads + subgroupAdd: *_subgroup.wgsl, needs the `subgroups` feature) or 'wide'
   * (moe_*_id_wide.wgsl: vec4 loads, RPT rows per thread, unpack2x16float decode), or 'union' (by expert,
   * moe_*_union.wgsl + moe_combine: each selected expert's rows read once for all the tokens that chose it; needs
   * scratch.y; batched decode). Default: chooseMoeDecode.
   */
  variant?: MoeDecodeVariant;
  /** moe_*_id_wide constants (default moeWideTuning). */
  wide?: Partial<MoeWideTuning>;
  /** moe_*_id_subgroup constants (default MOE_SUBGROUP_TUNING, plan.ts). */
  subgroup?: Partial<MoeSubgroupTuning>;
  /**
   * Expert offloading's waves (engine/expert-offload.ts), which keep every row's numbers those of one full launch:
   *   decode path: only tokens t0 .. t0 + count - 1 (default all): their rows, computed exactly as in a launch
   *     over all tokens (no kernel reduces across tokens);
   *   grouped path: `includeShared` false skips the shared expert (a later wave: the first one computed it) and
   *     `combine` false leaves the per-slot outputs in scratch.y for a later wave's combine. Pairs whose id is
   *     not an expert of the shards (ids ≥ E) are skipped by moe_align.
   */
  tokenRange?: { t0: number; count: number };
  includeShared?: boolean;
  combine?: boolean;
  /**
   * Grouped-path kernels: 'grouped' (moe_*_grouped.wgsl: a thread per weight row, x read from the storage buffer) or
   * 'tiled' (moe_*_tiled.wgsl: RT weight rows per thread, the block's x rows staged in workgroup memory). Default:
   * chooseMoePrefill (gpu/plan.ts); the engine passes the plan's.
   */
  prefill?: MoePrefillVariant;
  /** moe_*_tiled constants (default moeTiledTuning). */
  tiled?: Partial<MoeTiledTuning>;
}

/** Which kernels serve the grouped (prefill) path's experts. */
export type MoePrefillVariant = 'grouped' | 'tiled';

/** Override constants of moe_gateup_tiled / moe_down_tiled. */
export interface MoeTiledTuning {
  /** pair quads per workgroup (1, 2 or 4: 4, 8 or 16 of a block's 16 pairs) */
  tq: number;
  /** weight rows per invocation, 4 or 8 (gate/up: rt / 2 rows of gate and of up; down: rt rows) */
  rt: number;
  /** invocations per workgroup */
  wg: number;
}

/** Which kernels serve the decode path's experts. */
export type MoeDecodeVariant = 'f32' | 'subgroup' | 'wide' | 'union';

/** Override constants of moe_gateup_id_wide / moe_down_id_wide (tests and sweeps; the engine uses moeWideTuning). */
/** Override constants of moe_gateup_id_subgroup / moe_down_id_subgroup (a subgroup per weight row). */
export interface MoeSubgroupTuning {
  /** threads per workgroup (a multiple of the subgroup size) */
  wg: number;
  /** weight rows per workgroup of the gate/up kernel (each a gate and an up row) and of the down kernel; a
   * workgroup's subgroups take its rows in turns, so wg / subgroup size rows run at once */
  rpwGateUp: number;
  rpwDown: number;
}

export interface MoeWideTuning {
  /** rows per thread of moe_gateup_id_wide (1, 2 or 4; each row is a gate row and an up row) */
  rptGateUp: number;
  /** rows per thread of moe_down_id_wide (1, 2 or 4) */
  rptDown: number;
  /** decode through f16 bit patterns + unpack2x16float (docs/kernels.md §3.1 (B)) instead of the f32 bit trick */
  f16bits: boolean;
  /** threads per workgroup */
  wg: number;
  /**
   * the wide kernels stage their activation rows in workgroup memory where they fit (XS): moe_gateup_id_wide the
   * token's x row, moe_down_id_wide its slot rows of h, all at once or, where they do not fit, one at a time
   * (XSLOT; 'slot' asks for that everywhere: tests)
   */
  xs: boolean | 'slot';
}

/** Row strides and scale columns of one format's stacks (the kernels' rsD / scD / rsF / scF / rsFs / scFs). */
interface FormatGeometry {
  format: ExpertFormat;
  rsD: number; // words per gate/up row (cols = D)
  scD: number; // scale columns of gate/up rows
  rsF: number; // words per routed down row (cols = F)
  scF: number;
  rsFs: number; // words per shared down row (cols = Fs)
  scFs: number;
}

function formatGeometry(format: ExpertFormat, g: MoeGeometry): FormatGeometry {
  return {
    format,
    rsD: expertRowStrideWords(format, g.hidden),
    scD: scaleColumns(format, g.hidden),
    rsF: expertRowStrideWords(format, g.inter),
    scF: scaleColumns(format, g.inter),
    rsFs: g.sharedInter > 0 ? expertRowStrideWords(format, g.sharedInter) : 0,
    scFs: g.sharedInter > 0 ? scaleColumns(format, g.sharedInter) : 0,
  };
}

/**
 * One kernel launch group: shards of routed experts in one format, with the shared expert when it has that
 * format too. A layer whose shared expert is stored in another format than its routed experts (Kimi
 * K2-Thinking / K2.5: INT4 routed, BF16 shared) runs two groups, the second holding only the shared expert.
 */
interface LaunchGroup {
  fg: FormatGeometry;
  shards: ExpertShardBuffers[];
  shared: { gateUp: WeightBuffers; down: WeightBuffers } | null;
}

interface Checked {
  T: number;
  Ks: number;
  Fmax: number;
  groups: LaunchGroup[];
}

function checkExperts(k: Kernels, a: MoeExpertsArgs, kernel: string): Checked {
  const g = a.geometry;
  requireInt(g.hidden, 1, kernel, 'hidden');
  requireInt(g.experts, 1, kernel, 'experts', MOE_MAX_EXPERTS);
  requireInt(g.topK, 1, kernel, 'topK', Math.min(MOE_MAX_TOPK, g.experts));
  requireInt(g.inter, 1, kernel, 'inter');
  requireInt(g.sharedInter, 0, kernel, 'sharedInter');
  requireInt(a.tokens, 1, kernel, 'tokens', a.scratch.maxTokens);
  const T = a.tokens;
  const D = g.hidden;
  const Ks = slotsPerToken(g);
  const Fmax = Math.max(g.inter, g.sharedInter);
  requireBytes(k.gpu, a.x, T * D * 4, kernel, 'x');
  requireBytes(k.gpu, a.ids, T * g.topK * 4, kernel, 'ids');
  requireBytes(k.gpu, a.weights, T * g.topK * 4, kernel, 'weights');
  requireBytes(k.gpu, a.out, T * D * 4, kernel, 'out');
  requireBytes(k.gpu, a.scratch.hidden, T * Ks * Fmax * 4, kernel, 'scratch.hidden');
  const first = a.w.shards[0];
  if (!first) throw new ShapeError(`${kernel}: no expert shards`, 'shards');
  const format = weightFormat(first.gateUp);
  /** codes (and, for FP8 / INT4, scales) of one stack in the format `want` */
  const checkStack = (w: WeightBuffers, want: ExpertFormat, count: number, rows: number, cols: number, what: string): void => {
    if (weightFormat(w) !== want) throw new ShapeError(`${kernel}: '${what}' is ${weightFormat(w)}, its stack group is ${want}`, what, want, weightFormat(w));
    const L = stackLayout(want, count, rows, cols);
    requireBytes(k.gpu, w.codes, L.codeBytes, kernel, `${what}.codes`);
    if (w.format !== 'bf16') requireBytes(k.gpu, w.scales, L.scaleBytes, kernel, `${what}.scales`);
  };
  let next = 0;
  for (const s of a.w.shards) {
    if (s.first !== next || s.count < 1) throw new ShapeError(`${kernel}: expert shards must cover 0..E-1 in order (shard at ${s.first}, expected ${next})`, 'shards');
    next += s.count;
    checkStack(s.gateUp, format, 2 * s.count, g.inter, D, `shard ${s.first}.gateUp`);
    checkStack(s.down, format, s.count, D, g.inter, `shard ${s.first}.down`);
  }
  if (next !== g.experts) throw new ShapeError(`${kernel}: expert shards cover ${next} experts, the layer has ${g.experts}`, 'shards', g.experts, next);
  if ((g.sharedInter > 0) !== (a.w.shared !== null)) {
    throw new ShapeError(`${kernel}: sharedInter = ${g.sharedInter} but shared weights are ${a.w.shared ? 'given' : 'missing'}`, 'shared');
  }
  const sh = a.w.shared;
  const shFormat = sh ? weightFormat(sh.gateUp) : format;
  if (sh) {
    checkStack(sh.gateUp, shFormat, 2, g.sharedInter, D, 'shared.gateUp');
    checkStack(sh.down, shFormat, 1, D, g.sharedInter, 'shared.down');
  }
  const groups: LaunchGroup[] = shFormat === format
    ? [{ fg: formatGeometry(format, g), shards: a.w.shards, shared: sh }]
    : [{ fg: formatGeometry(format, g), shards: a.w.shards, shared: null }, { fg: formatGeometry(shFormat, g), shards: [], shared: sh }];
  return { T, Ks, Fmax, groups };
}

/**
 * The weight bindings of the routed stack and the shared one by name (codes, scales, shCodes, shScales), in every
 * format; a missing stack or BF16's scales bind the unused buffer (one binding layout for all formats).
 */
function stackBindings(k: Kernels, routed: WeightBuffers | undefined, shared: WeightBuffers | undefined): Record<'codes' | 'scales' | 'shCodes' | 'shScales', Buf> {
  const pair = (w: WeightBuffers | undefined): [Buf, Buf] => (!w ? [unusedBuffer(k), unusedBuffer(k)] : [w.codes, w.format === 'bf16' ? unusedBuffer(k) : w.scales]);
  const [codes, scales] = pair(routed);
  const [shCodes, shScales] = pair(shared);
  return { codes, scales, shCodes, shScales };
}

/** The instance of a kernel family for a format: STEM for FP8, STEM_bf16, STEM_int4 (scripts/embed-shaders.ts). */
function kernelFor(name: string, format: ExpertFormat): string {
  return format === 'fp8' ? name : `${name}_${format}`;
}

/**
 * The (shard, shared?) dispatches of a launch group: one per shard of routed experts (the first group's first
 * shard also computes the shared expert when it is in the group), or a single shared-only dispatch (e0 = e1 = 0).
 */
function dispatchesOf(grp: LaunchGroup): Array<{ first: number; end: number; gateUp?: WeightBuffers; down?: WeightBuffers; doShared: number }> {
  if (grp.shards.length === 0) return [{ first: 0, end: 0, doShared: 1 }];
  return grp.shards.map((s, i) => ({ first: s.first, end: s.first + s.count, gateUp: s.gateUp, down: s.down, doShared: i === 0 && grp.shared ? 1 : 0 }));
}

/**
 * Threads per workgroup of a row-per-thread kernel over `rows` rows at `rpt` rows per thread: the plan's `wg`, or
 * fewer (a multiple of 8, the CPU adapters' SIMD width) when the last workgroup would be mostly idle. Idle threads
 * are not free: rows past the end recompute the last row (the kernels have no early return before their barrier),
 * so a toy expert's gate/up (F = 96-128 rows) under 64 threads x 4 rows computed 256 rows, 2-2.7x its work. The
 * same number of workgroups, each with fewer threads; no result bit changes (a row is one thread's sum, XS staging
 * loops over any WG). Measured in docs/benchmarks.md "Fitted workgroups".
 */
export function fitRowWorkgroup(rows: number, rpt: number, wg: number): number {
  const groups = Math.ceil(rows / (wg * rpt));
  const threads = Math.ceil(rows / (groups * rpt));
  return Math.min(wg, Math.max(8, Math.ceil(threads / 8) * 8));
}

/** The wide and by-expert kernels' threads per workgroup: gate/up over Fmax rows, down over the hidden rows. */
function wideWorkgroups(Fmax: number, hidden: number, w: MoeWideTuning): { gateUp: number; down: number } {
  return { gateUp: fitRowWorkgroup(Fmax, w.rptGateUp, w.wg), down: fitRowWorkgroup(hidden, w.rptDown, w.wg) };
}

/** The wide and by-expert kernels' constants, checked: 1, 2 or 4 rows per thread. */
function checkWide(w: MoeWideTuning): MoeWideTuning {
  if (!([1, 2, 4].includes(w.rptGateUp) && [1, 2, 4].includes(w.rptDown))) {
    throw new ShapeError('moe_experts_decode: the wide and by-expert kernels take 1, 2 or 4 rows per thread', 'wide', 4, Math.max(w.rptGateUp, w.rptDown));
  }
  return w;
}

/** Decode / small-T experts: one SwiGLU dispatch and one down dispatch per shard, expert ids read on the GPU. */
export function moeExpertsDecode(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: MoeExpertsArgs): void {
  const c = checkExperts(k, a, 'moe_experts_decode');
  const g = a.geometry;
  const { t0, count: Tw } = a.tokenRange ?? { t0: 0, count: c.T };
  requireInt(t0, 0, 'moe_experts_decode', 'tokenRange.t0', c.T - 1);
  requireInt(Tw, 1, 'moe_experts_decode', 'tokenRange.count', c.T - t0);
  if (a.variant === 'union') {
    moeExpertsUnion(k, pass, arena, a, c, t0, Tw);
    return;
  }
  const plans = c.groups.map((grp) => {
    const variant = decodeVariantFor(k, grp.fg.format, g.hidden, a.variant);
    const wide = variant === 'wide' ? checkWide({ ...moeWideTuning(k), ...a.wide }) : null;
    const sub = variant === 'subgroup' ? { ...MOE_SUBGROUP_TUNING, ...a.subgroup } : null;
    if (sub) {
      requireSubgroupWorkgroup(k.gpu, sub.wg, 1024, 'moe_experts_decode', 'subgroup.wg');
      requireInt(sub.rpwGateUp, 1, 'moe_experts_decode', 'subgroup.rpwGateUp', 1024);
      requireInt(sub.rpwDown, 1, 'moe_experts_decode', 'subgroup.rpwDown', 1024);
    }
    const WG = sub ? sub.wg : wide ? wide.wg : 64;
    const f16: Record<string, number> = wide && grp.fg.format === 'fp8' ? { F16BITS: wide.f16bits ? 1 : 0 } : {};
    // the gate/up kernel's staged x row, the down kernel's staged slot rows of h (no result bit changes: XS in
    // moe_gateup_id_wide.wgsl, moe_down_id_wide.wgsl)
    const staged = (need: number): Record<string, number> => {
      const xsn = wide?.xs ? stagedCapacity(k, need, 0) : 0;
      return xsn > 0 ? { XS: 1, XSN: xsn } : {};
    };
    const xsGateUp = staged(stagedRowVec4(g.hidden));
    // the down kernel: all slot rows at once, else one at a time (XSLOT)
    const allSlots = staged(stagedRowVec4(c.Fmax, c.Ks));
    const oneSlot = staged(stagedRowVec4(c.Fmax));
    const xsDown = 'XS' in allSlots && wide?.xs !== 'slot' ? allSlots : 'XS' in oneSlot ? { ...oneSlot, XSLOT: 1 } : {};
    // the wide kernels' threads per workgroup, fitted to each kernel's rows (fitRowWorkgroup)
    const { gateUp: wgGateUp, down: wgDown } = wide ? wideWorkgroups(c.Fmax, g.hidden, wide) : { gateUp: WG, down: WG };
    // the kernel instance and its override constants
    const kernel = (stem: string, rpt: number, rpw: number, wg: number): { name: string; constants: Record<string, number> } => sub
      ? { name: `${stem}_subgroup`, constants: { WG, RPW: rpw } }
      : wide
        ? { name: kernelFor(`${stem}_wide`, grp.fg.format), constants: { WG: wg, RPT: rpt, ...f16, ...(stem === 'moe_gateup_id' ? xsGateUp : xsDown) } }
        : { name: kernelFor(stem, grp.fg.format), constants: { WG } };
    return {
      grp,
      // rows per workgroup of each kernel
      guRows: sub ? sub.rpwGateUp : wide ? wgGateUp * wide.rptGateUp : WG,
      dnRows: sub ? sub.rpwDown : wide ? wgDown * wide.rptDown : WG,
      gu: kernel('moe_gateup_id', wide?.rptGateUp ?? 1, sub?.rpwGateUp ?? 0, wgGateUp),
      dn: kernel('moe_down_id', wide?.rptDown ?? 1, sub?.rpwDown ?? 0, wgDown),
    };
  });
  const shape = { T: c.T, D: g.hidden, K: g.topK, F: g.inter, Fs: g.sharedInter, Fmax: c.Fmax, Ks: c.Ks, t0 };
  for (const { grp, gu, guRows } of plans) {
    const f = grp.fg;
    for (const d of dispatchesOf(grp)) {
      k.run(pass, arena, gu.name, {
        constants: gu.constants,
        bind: { xin: a.x, ids: a.ids, wts: a.weights, ...stackBindings(k, d.gateUp, d.doShared ? grp.shared?.gateUp : undefined), h: a.scratch.hidden },
        params: { ...shape, e0: d.first, e1: d.end, doShared: d.doShared, rsD: f.rsD, scD: f.scD },
        grid: [Math.ceil(c.Fmax / guRows), d.doShared ? c.Ks : g.topK, Tw],
      });
    }
  }
  let n = 0;
  for (const { grp, dn, dnRows } of plans) {
    const f = grp.fg;
    for (const d of dispatchesOf(grp)) {
      const accumulate = n++ > 0 || a.accumulate ? 1 : 0;
      k.run(pass, arena, dn.name, {
        constants: dn.constants,
        bind: { xin: a.scratch.hidden, ids: a.ids, ...stackBindings(k, d.down, d.doShared ? grp.shared?.down : undefined), out: a.out },
        params: { ...shape, e0: d.first, e1: d.end, doShared: d.doShared, accumulate, rsF: f.rsF, rsFs: f.rsFs, scF: f.scF, scFs: f.scFs },
        grid: [Math.ceil(g.hidden / dnRows), Tw],
      });
    }
  }
}

/**
 * The decode path by expert (variant 'union'): per launch group and shard, moe_gateup_union, moe_down_union over the
 * shard's experts (and the shared one), each expert's rows read and decoded once per group of up to 4 of the tokens
 * t0 .. t0 + Tw - 1 that chose it, the per-slot outputs in scratch.y; then moe_combine (byShard) adds the shard's
 * slots in order (+ the residual). Each kernel repeats, per token, the operations of the by-id wide kernels with the
 * same constants (moeWideTuning), and the combines add the terms in moe_down_id_wide's order, shard by shard: the
 * result equals the 'wide' path bit for bit, whatever tokens share a step.
 */
function moeExpertsUnion(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: MoeExpertsArgs, c: Checked, t0: number, Tw: number): void {
  const g = a.geometry;
  const y = a.scratch.y;
  requireBytes(k.gpu, y, c.T * c.Ks * g.hidden * 4, 'moe_experts_decode', 'scratch.y');
  const wide = checkWide({ ...moeWideTuning(k), ...a.wide });
  // the by-id wide kernels' workgroups, so the two paths keep the same constants
  const { gateUp: wgGateUp, down: wgDown } = wideWorkgroups(c.Fmax, g.hidden, wide);
  // T: one past the last token of the dispatch (the by-expert kernels scan ids of tokens t0 .. T - 1)
  const shape = { T: t0 + Tw, D: g.hidden, K: g.topK, F: g.inter, Fs: g.sharedInter, Fmax: c.Fmax, Ks: c.Ks, t0 };
  let n = 0;
  for (const grp of c.groups) {
    const f = grp.fg;
    const f16: Record<string, number> = f.format === 'fp8' ? { F16BITS: wide.f16bits ? 1 : 0 } : {};
    for (const d of dispatchesOf(grp)) {
      const experts = d.end - d.first + d.doShared;
      k.run(pass, arena, kernelFor('moe_gateup_union', f.format), {
        constants: { WG: wgGateUp, RPT: wide.rptGateUp, ...f16 },
        bind: { xin: a.x, ids: a.ids, wts: a.weights, ...stackBindings(k, d.gateUp, d.doShared ? grp.shared?.gateUp : undefined), h: a.scratch.hidden },
        params: { ...shape, e0: d.first, e1: d.end, doShared: d.doShared, rsD: f.rsD, scD: f.scD },
        grid: [Math.ceil(c.Fmax / (wgGateUp * wide.rptGateUp)), experts],
      });
      k.run(pass, arena, kernelFor('moe_down_union', f.format), {
        constants: { WG: wgDown, RPT: wide.rptDown, ...f16 },
        bind: { xin: a.scratch.hidden, ids: a.ids, ...stackBindings(k, d.down, d.doShared ? grp.shared?.down : undefined), out: y },
        params: { ...shape, e0: d.first, e1: d.end, doShared: d.doShared, accumulate: 0, rsF: f.rsF, rsFs: f.rsFs, scF: f.scF, scFs: f.scFs },
        grid: [Math.ceil(g.hidden / (wgDown * wide.rptDown)), experts],
      });
      k.run(pass, arena, 'moe_combine', {
        constants: { WG: 64 },
        bind: { y, out: a.out, ids: a.ids },
        params: { T: c.T, D: g.hidden, Ks: c.Ks, accumulate: n++ > 0 || a.accumulate ? 1 : 0, t0, byShard: 1, K: g.topK, e0: d.first, e1: d.end, doShared: d.doShared },
        grid: [Math.ceil(g.hidden / 64), Tw],
      });
    }
  }
}

/** Prefill experts: tokens grouped by expert on the GPU, grouped GEMMs over indirect grids, then the combine. */
export function moeExpertsPrefill(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: MoeExpertsArgs): void {
  const c = checkExperts(k, a, 'moe_experts_prefill');
  const g = a.geometry;
  const s0 = a.scratch;
  if (!s0.plan || !s0.indirect) throw new ShapeError('moe_experts_prefill: the scratch was created without the grouped buffers', 'scratch');
  const maxBlocks = maxExpertBlocks(g, c.T);
  if (maxBlocks > s0.maxBlocks) throw new ShapeError(`moe_experts_prefill: ${c.T} tokens need ${maxBlocks} blocks, scratch has ${s0.maxBlocks}`, 'scratch');
  requireInt(maxBlocks, 1, 'moe_experts_prefill', 'blocks', k.gpu.limits.maxComputeWorkgroupsPerDimension);
  requireBytes(k.gpu, s0.y, c.T * c.Ks * g.hidden * 4, 'moe_experts_prefill', 'scratch.y');
  if (a.tokenRange) throw new ShapeError('moe_experts_prefill: waves of the grouped path select experts (ids), not tokens', 'tokenRange');
  const sh = a.includeShared === false ? null : a.w.shared;
  const pb = s0.maxBlocks; // offset of the sorted pairs in `plan`
  const tiled = (a.prefill ?? chooseMoePrefill(k)) === 'tiled' ? checkTiled({ ...moeTiledTuning(k), ...a.tiled }) : null;
  // the indirect grids' y: row tiles (x the parts of a block for the tiled kernels)
  const parts = tiled ? MOE_BLOCK_M / (4 * tiled.tq) : 1;
  const rowsGU = tiled ? (tiled.rt / 2) * tiled.wg : GROUPED_ROWS;
  const rowsDown = tiled ? tiled.rt * tiled.wg : GROUPED_ROWS;
  const gateUpKernel = tiled ? 'moe_gateup_tiled' : 'moe_gateup_grouped';
  const downKernel = tiled ? 'moe_down_tiled' : 'moe_down_grouped';
  const constants = tiled ? { TQ: tiled.tq, RT: tiled.rt, WG: tiled.wg } : undefined;

  k.run(pass, arena, 'moe_align', {
    constants: { WG: 256, MAX_E1: Math.ceil((g.experts + 1) / 64) * 64 },
    bind: { ids: a.ids, plan: s0.plan, args: s0.indirect },
    params: {
      T: c.T, K: g.topK, E: g.experts, hasShared: sh ? 1 : 0, BM: MOE_BLOCK_M,
      tilesGU: Math.ceil(c.Fmax / rowsGU) * parts, tilesDown: Math.ceil(g.hidden / rowsDown) * parts, pb, Ks: c.Ks,
    },
    grid: [1],
  });
  const shape = { T: c.T, D: g.hidden, K: g.topK, F: g.inter, Fs: g.sharedInter, Fmax: c.Fmax, Ks: c.Ks, E: g.experts, pb };
  // both grouped kernels take one Params (shaders/include/grouped.wgsl): the row strides and scale columns of both halves
  const grouped = (f: FormatGeometry) => ({ rsD: f.rsD, scD: f.scD, rsF: f.rsF, rsFs: f.rsFs, scF: f.scF, scFs: f.scFs });
  const groups = a.includeShared === false ? withoutShared(c.groups) : c.groups;
  for (const grp of groups) {
    const f = grp.fg;
    for (const d of dispatchesOf(grp)) {
      k.run(pass, arena, kernelFor(gateUpKernel, f.format), {
        constants,
        bind: { xin: a.x, plan: s0.plan, wts: a.weights, ...stackBindings(k, d.gateUp, d.doShared ? grp.shared?.gateUp : undefined), h: s0.hidden },
        params: { ...shape, e0: d.first, e1: d.end, doShared: d.doShared, ...grouped(f) },
        grid: { indirect: s0.indirect, offset: 0 },
      });
    }
  }
  for (const grp of groups) {
    const f = grp.fg;
    for (const d of dispatchesOf(grp)) {
      k.run(pass, arena, kernelFor(downKernel, f.format), {
        constants,
        bind: { xin: s0.hidden, plan: s0.plan, ...stackBindings(k, d.down, d.doShared ? grp.shared?.down : undefined), y: s0.y },
        params: { ...shape, e0: d.first, e1: d.end, doShared: d.doShared, ...grouped(f) },
        grid: { indirect: s0.indirect, offset: 16 },
      });
    }
  }
  if (a.combine === false) return;
  const WG = 64;
  k.run(pass, arena, 'moe_combine', {
    constants: { WG },
    bind: { y: s0.y, out: a.out, ids: a.ids },
    params: { T: c.T, D: g.hidden, Ks: c.Ks, accumulate: a.accumulate ? 1 : 0, t0: 0, byShard: 0, K: g.topK, e0: 0, e1: 0, doShared: 0 },
    grid: [Math.ceil(g.hidden / WG), c.T],
  });
}

function checkTiled(t: MoeTiledTuning): MoeTiledTuning {
  if (![1, 2, 4].includes(t.tq)) throw new ShapeError(`moe_experts_prefill: tiled tq must be 1, 2 or 4, got ${t.tq}`, 'tq', [1, 2, 4], t.tq);
  if (t.rt !== 4 && t.rt !== 8) throw new ShapeError(`moe_experts_prefill: tiled rt must be 4 or 8, got ${t.rt}`, 'rt', [4, 8], t.rt);
  requireInt(t.wg, 1, 'moe_experts_prefill', 'tiled wg', 256);
  return t;
}

/** The launch groups of a wave that skips the shared expert (a shared-only group drops out). */
function withoutShared(groups: LaunchGroup[]): LaunchGroup[] {
  return groups.filter((g) => g.shards.length > 0).map((g) => ({ ...g, shared: null }));
}

/** True when a chunk of `tokens` tokens runs the decode-path (by-id) expert kernels: the one rule moeExperts follows. */
export function usesDecodePath(tokens: number, scratch: MoeScratch, decodeMaxTokens = 4): boolean {
  return tokens <= decodeMaxTokens || !scratch.plan;
}

/** Decode path up to `decodeMaxTokens` tokens (default 4: each expert row is then read ≤ 4 times), else grouped. */
export function moeExperts(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: MoeExpertsArgs, decodeMaxTokens = 4): void {
  if (usesDecodePath(a.tokens, a.scratch, decodeMaxTokens)) moeExpertsDecode(k, pass, arena, a);
  else moeExpertsPrefill(k, pass, arena, a);
}

