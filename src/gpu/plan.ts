/**
 * The kernel plan: the ONE module that decides every kernel variant and its constants from the adapter class and
 * the model's shapes, each rule next to the measurements that justify it (docs/benchmarks.md rows). The engine
 * computes a plan once per (device, model) and passes its choices to the launchers (forward.ts); a launcher called
 * without a choice (tests, the bench) asks the same functions here. `webmoe doctor --model DIR` prints the plan,
 * and the bench report records it.
 *
 * Legend: T tokens of a dispatch, D hidden.
 */
import type { GpuContext } from './device.js';
import type { Kernels } from './kernels.js';
import { adapterClass, type AdapterClass } from './ops/adapter-class.js';
import type { LinearFormat, ExpertFormat } from './ops/fp8-layout.js';
import type { GemmTiledTuning, GemmVariant, GemvVariant, GemvWideTuning } from './ops/linear.js';
import type { MoeDecodeVariant, MoePrefillVariant, MoeSubgroupTuning, MoeTiledTuning, MoeWideTuning } from './ops/moe.js';

/** What the engine runs on one device for one model (planKernels). */
export interface KernelPlan {
  adapter: AdapterClass;
  /** FP8 decode GEMV (chooseGemv) */
  gemv: GemvVariant;
  /** fp8_gemv_wide family constants per weight format (gemvWideTuning) */
  gemvWide: Record<LinearFormat, GemvWideTuning>;
  /** decode GEMVs that stage x in workgroup memory take their input's RMSNorm as the fp8_gemv_wide NORM prologue
   * instead of a separate rmsnorm dispatch (chooseNormPrologue) */
  normPrologue: boolean;
  /** prefills of at least this many tokens take the tiled GEMM (chooseGemm), with these constants at 64 tokens */
  gemmTiledFrom: number;
  gemmTiled: GemmTiledTuning;
  /** MoE decode-path kernels for FP8 experts (chooseMoeDecode) and the wide kernels' constants */
  moeDecode: MoeDecodeVariant;
  moeWide: MoeWideTuning;
  /** the subgroup kernels' constants (MOE_SUBGROUP_TUNING) */
  moeSubgroup: MoeSubgroupTuning;
  /** prefill chunks of at most this many tokens run the decode path's by-id expert kernels (choosePrefillByIdExperts) */
  moeDecodeMaxTokens: number;
  /** prefill linears (FP8) of at most this many columns run the decode GEMV per token row, not a GEMM; 0: none (choosePrefillGemvRows) */
  prefillGemvMaxCols: number;
  /** MoE experts of a prefill chunk (the grouped path, above moeDecodeMaxTokens tokens): chooseMoePrefill, moeTiledTuning */
  moePrefill: MoePrefillVariant;
  moeTiled: MoeTiledTuning;
  /** MoE experts of a batched decode step (any number of rows, every format): chooseMoeBatch */
  moeBatch: MoeDecodeVariant;
  /** dense linears of a batched decode step: the decode GEMV per row, or a GEMM for any number of rows */
  batchLinear: BatchLinear;
  /** mla_attention_rows (true) or the tiled kernel, for one-token decode and for prefill (preferRows) */
  attentionRows: { decode: boolean; prefill: boolean };
  /** one-token decode without a key split runs the whole absorbed attention in one dispatch, mla_attend_rows (chooseAttendRows) */
  attendRows: boolean;
  /** the key split of one-token decode attention (decodeSplitRule) */
  decodeSplits: DecodeSplitRule;
  /** decode and batched decode rows route in one dispatch: the gate GEMV and its RMSNorm inside moe_router (chooseRouterGate) */
  routerGate: boolean;
}

/**
 * The plan for this device and a model's shapes (hidden D, latent rank R, rope width Dr; the GPU layer knows no
 * model config), `precision` 'f16' being the opt-in f16 GEMV.
 */
export function planKernels(k: Kernels, shapes: { hidden?: number; rank?: number; rope?: number } = {}, precision: 'f32' | 'f16' = 'f32'): KernelPlan {
  const D = shapes.hidden ?? 0;
  const R = shapes.rank ?? 0;
  const L = R + (shapes.rope ?? 0);
  return {
    adapter: adapterClass(k.gpu),
    gemv: chooseGemv(k, precision),
    gemvWide: { fp8: gemvWideTuning(k, 'fp8'), bf16: gemvWideTuning(k, 'bf16'), int4: gemvWideTuning(k, 'int4') },
    normPrologue: chooseNormPrologue(k, chooseGemv(k, precision)),
    gemmTiledFrom: tiledGemmFrom(k),
    gemmTiled: gemmTiledTuning(k, 64),
    moeDecode: chooseMoeDecode(k, D),
    moeWide: moeWideTuning(k),
    moeSubgroup: { ...MOE_SUBGROUP_TUNING },
    moeDecodeMaxTokens: choosePrefillByIdExperts(k, D),
    prefillGemvMaxCols: choosePrefillGemvRows(k, chooseGemv(k, precision)),
    moePrefill: chooseMoePrefill(k),
    moeTiled: moeTiledTuning(k),
    moeBatch: chooseMoeBatch(k, D),
    batchLinear: chooseBatchLinear(chooseGemv(k, precision)),
    attentionRows: { decode: attentionVariant(k.gpu, 1, R, L) === 'rows', prefill: attentionVariant(k.gpu, 2, R, L) === 'rows' },
    attendRows: chooseAttendRows(k.gpu, R, L),
    decodeSplits: decodeSplitRule(k.gpu),
    routerGate: chooseRouterGate(k),
  };
}

/** The plan as lines for people (`webmoe doctor --model`), each with the rule that chose it. */
export function describePlan(p: KernelPlan): string[] {
  const w = (t: GemvWideTuning, fp8 = false) => `rpt ${t.rpt}, wg ${t.wg}, up to ${t.tb} tokens per invocation${fp8 && t.f16bits ? ', f16-bit decode' : ''}${t.xs ? ', x staged in workgroup memory' : ''}`;
  return [
    `adapter class: ${p.adapter}`,
    `dense decode GEMV (FP8): ${p.gemv} (chooseGemv: wide on CPU adapters, 1.5-2.5x the f32 GEMV; subgroup on GPUs)`,
    `  fp8_gemv_wide: FP8 ${w(p.gemvWide.fp8, true)}; BF16 ${w(p.gemvWide.bf16)}; INT4 ${w(p.gemvWide.int4)} (gemvWideTuning)`,
    `RMSNorm fused into the decode GEMV that reads it: ${p.normPrologue ? 'where the GEMV stages its x rows in workgroup memory' : 'never'} (chooseNormPrologue)`,
    `prefill GEMM (FP8): fp8_gemm_tiled from ${p.gemmTiledFrom} tokens, rt ${p.gemmTiled.rt} x tq ${p.gemmTiled.tq}, wg ${p.gemmTiled.wg} (chooseGemm, gemmTiledTuning)${p.prefillGemvMaxCols > 0 ? `; linears of up to ${p.prefillGemvMaxCols} columns: the decode GEMV per token row (choosePrefillGemvRows)` : ''}`,
    `MoE experts by id: ${p.moeDecode}${p.moeDecode === 'wide' ? ` (rpt ${p.moeWide.rptGateUp}/${p.moeWide.rptDown}, wg ${p.moeWide.wg})` : ''}${p.moeDecode === 'subgroup' ? ` (wg ${p.moeSubgroup.wg}, ${p.moeSubgroup.rpwGateUp}/${p.moeSubgroup.rpwDown} rows per workgroup)` : ''} (chooseMoeDecode: wide on CPU adapters, 2.5-3.8x thread-per-row); grouped GEMMs above ${p.moeDecodeMaxTokens >= 1 << 16 ? 'no chunk: every prefill chunk by id' : `${p.moeDecodeMaxTokens} tokens`} (choosePrefillByIdExperts)`,
    `MoE experts of a prefill chunk: ${p.moePrefill}${p.moePrefill === 'tiled' ? ` (tq ${p.moeTiled.tq}, rt ${p.moeTiled.rt}, wg ${p.moeTiled.wg})` : ''} (chooseMoePrefill: tiled through workgroup memory, 2-3x the grouped kernels on lavapipe, 3-6x on SwiftShader)`,
    `dense linears of a batched decode step: ${p.batchLinear} (chooseBatchLinear: one kernel for any number of rows)`,
    `MoE experts of a batched decode step: ${p.moeBatch} (chooseMoeBatch: one variant for any number of rows)`,
    `MLA attention: decode ${p.attentionRows.decode ? 'rows' : 'tiled'}, prefill ${p.attentionRows.prefill ? 'rows' : 'tiled'} (preferRows)`,
    `MLA attention of one token without a key split: ${p.attendRows ? 'one dispatch (mla_attend_rows)' : 'absorb_q, attention, absorb_v'} (chooseAttendRows)`,
    `decode attention key split: up to ${p.decodeSplits.maxSplits} splits of at least ${p.decodeSplits.minChunk} keys, up to ${p.decodeSplits.targetWorkgroups} workgroups (decodeSplitRule)`,
    `MoE routing of a decode step: ${p.routerGate ? 'one dispatch (gate GEMV and RMSNorm inside moe_router)' : 'gate GEMV, then moe_router'} (chooseRouterGate)`,
  ];
}

// ------------------------------------------------------------------------------------------------------------
// Dense linears

/**
 * The FP8 GEMV for this device — the one place the decode GEMV is chosen:
 *   - 'f16' only when asked (opt-in precision) and `shader-f16` exists;
 *   - CPU adapters: 'wide' (fp8_gemv_wide: vec4 loads, several rows per invocation, unpack2x16float decode).
 *     Measured interleaved at Kimi widths (docs/benchmarks.md "Tuning"): on lavapipe 2.2-2.5x faster than the
 *     f32 GEMV (7168→2048: 4.7 vs 10.4 ms; kv_a 7168→576: 1.3 vs 3.0 ms) and faster than fp8_gemv_subgroup
 *     on every shape; on SwiftShader 1.5x faster than f32 (60 vs 91 ms, 13.7 vs 21.1 ms), the subgroup GEMV
 *     being 1.7-1.9x slower than f32 there;
 *   - GPUs with `subgroups` of at most 64 lanes: 'subgroup' (coalesced loads). Measured on an NVIDIA H200
 *     (docs/benchmarks/hardware-h200.html, Kimi widths): 3.2-6.8x fp8_gemv_wide and 5.5-13x fp8_gemv (q_a
 *     7168→1536: 0.024 vs 0.163 and 0.310 ms; o_proj 8192→7168: 0.060 vs 0.267 and 0.418 ms);
 *   - otherwise the barrier-free 'f32'.
 */
export function chooseGemv(k: Kernels, precision: 'f32' | 'f16' = 'f32'): GemvVariant {
  if (precision === 'f16' && k.available('fp8_gemv_f16')) return 'f16';
  if (adapterClass(k.gpu) !== 'hardware') return 'wide';
  if (subgroupsFit(k) && k.available('fp8_gemv_subgroup')) return 'subgroup';
  return 'f32';
}

/**
 * Whether the subgroup kernels' 64-thread workgroups (GEMV_SUBGROUP_WG, MOE_SUBGROUP_TUNING) hold whole subgroups
 * here: subgroups of at most 64 lanes (binding.ts requireSubgroupWorkgroup refuses anything else).
 */
function subgroupsFit(k: Kernels): boolean {
  return (k.gpu.info.subgroupMaxSize ?? 64) <= 64;
}

/**
 * The fp8_gemv_wide family's constants for this device and weight format (see chooseGemv for FP8's measurements).
 * BF16 and INT4 (fp8_gemv_wide_bf16, _int4): 4 rows per invocation on both CPU adapters. Measured interleaved on this
 * 2-core machine under other jobs' load (medians of 7 rounds on lavapipe, 5 on SwiftShader, ms per dispatch;
 * docs/kernels.md §4): BF16 7168→2048 lavapipe rpt 4 22.2, rpt 2 26.3, rpt 1 54.6 vs bf16_gemv 67.8; SwiftShader
 * 82.6 / 112.5 / 168.8 vs 292.6; INT4 7168→2048 lavapipe rpt 4 19.6 vs rpt 2 27.5, SwiftShader 210 vs 302. GPUs: one
 * row per invocation; there the family serves only GEMVs with a fused norm (the subgroup family takes the rest,
 * linear.ts): on the H200 the BF16 router row Kimi E384 ran 0.342 ms (16 GB/s) through this kernel.
 */
export function gemvWideTuning(k: Kernels, format: LinearFormat = 'fp8'): GemvWideTuning {
  const cls = adapterClass(k.gpu);
  // x staged in workgroup memory on CPU adapters: see GEMV_STAGED_X
  const xs = cls !== 'hardware';
  if (format !== 'fp8') return { rpt: cls === 'hardware' ? 1 : 4, f16bits: true, wg: 64, tb: GEMV_TOKENS_PER_INVOCATION, xs };
  // lavapipe: 4-8 rows per invocation ran alike (3.0-3.2 GB/s at 7168→2048 and 7168→576; again on 2026-12-05 with
  // x staged: 4 / 6 / 8 rows within noise from 384→352 to 2048→7168) and 2 rows ~1.6x slower. SwiftShader, with x
  // staged (2026-12-05, interleaved, µs, 2 / 4 / 8 rows): 384→352 1122 / 957 / 834, 384→768 2434 / 1933 / 1625,
  // 1024→512 4784 / 4483 / 3277, 2048→7168 128123 / 101843 / 70386, 7168→576 35717 / 24510 / 25100: 8 rows
  // (docs/benchmarks.md "Fitted workgroups, 8 rows per GEMV thread on SwiftShader"; 2 rows led before x was staged)
  return { rpt: cls === 'llvmpipe' ? 4 : cls === 'swiftshader' ? 8 : 2, f16bits: true, wg: 64, tb: GEMV_TOKENS_PER_INVOCATION, xs };
}

/**
 * Tokens per invocation of the fp8_gemv_wide family when a launch has several (batched decode rows, INT4 prefill):
 * each weight chunk is decoded once for up to this many tokens. Measured on lavapipe, 8 batched rows, RPT 4,
 * interleaved (.scratch tbsweep, ms per launch, 3 rounds): 256→512 TB 1 0.90-1.07, TB 2 0.70-0.86, TB 4 0.93-1.11,
 * TB 8 0.57-0.89; 7168→2048 TB 1 66-96, TB 4 67-84, TB 8 58-65. RPT 2 or 1 with TB 8 ran 1.5-2.5x slower than RPT 4
 * (each invocation's accumulators, RPT x TB, spill on a CPU adapter either way; fewer rows only add x loads).
 * GPUs: not measured.
 */
const GEMV_TOKENS_PER_INVOCATION = 8;

/**
 * Whether decode GEMVs take the RMSNorm of their input as a prologue (fp8_gemv_wide NORM: the workgroup normalises
 * its tokens' x rows on their way into workgroup memory, include/rms_inv.wgsl, bit-identical to the rmsnorm kernel)
 * instead of a separate rmsnorm dispatch, wherever the GEMV stages x (linear.ts fusesNorm: GemvWideTuning.xs and x
 * rows that fit workgroup memory). The prologue costs each workgroup one pass over x and two barriers; the saving is
 * one dispatch. Measured: see NORM_PROLOGUE_MEASURED. GPUs (the subgroup GEMV stages nothing): never.
 */
export function chooseNormPrologue(k: Kernels, gemv: GemvVariant): boolean {
  return gemv === 'wide' && adapterClass(k.gpu) !== 'hardware';
}

/**
 * Threads per workgroup of fp8_gemv_subgroup (4 rows per workgroup; the threads stride along the rows): 64, the one
 * value measured on the H200 (docs/benchmarks/hardware-h200.html). The hardware bench sweeps 64, 128 and 256
 * (bench/optimised.ts optimisedFp8Gemv); a GPU run that finds a better one makes this a per-adapter choice.
 */
export const GEMV_SUBGROUP_WG = 64;

/** Prefills of at least this many tokens take the tiled GEMM (an 'f32' request, not a forced batch GEMM) on CPU adapters. */
export const TILED_MIN_TOKENS = 2;

/**
 * From how many tokens a prefill linear takes fp8_gemm_tiled on this device: TILED_MIN_TOKENS on CPU adapters;
 * 128 on GPUs. Measured on an NVIDIA H200 (Dawn/Vulkan, docs/benchmarks/hardware-h200.html, kimi expert gate/up
 * 7168->2048): the tiled kernel ran 0.63 ms at 16, 64, 128 and 256 tokens alike (its grid of row blocks is too
 * small to fill 132 SMs), fp8_gemm 0.47, 0.58, 0.88 and 1.69 ms: fp8_gemm wins up to 64 tokens, the tiled one
 * from 128.
 */
export function tiledGemmFrom(k: Kernels): number {
  return adapterClass(k.gpu) === 'hardware' ? 128 : TILED_MIN_TOKENS;
}

/**
 * The FP8 GEMM for a linear of T tokens — the one place the prefill GEMM is chosen:
 *   - 'f16' when asked (opt-in precision);
 *   - a forced GEMM (BatchSession's batched decode rows, `forceGemm`) keeps fp8_gemm whatever the row count:
 *     batch invariance needs one kernel for 1..S rows, and the tiled kernel's token tile would waste most of
 *     its work on a handful of rows;
 *   - otherwise, from `tiledFrom` tokens on (tiledGemmFrom: 2 on CPU adapters, 128 on GPUs), 'tiled'
 *     (fp8_gemm_tiled). Measured
 *     interleaved at Kimi width 7168→2048 (docs/benchmarks.md "Prefill GEMM"): see gemmTiledTuning.
 */
export function chooseGemm(requested: GemmVariant, T: number, forced: boolean, tiledFrom = TILED_MIN_TOKENS): GemmVariant {
  if (requested !== 'f32' || forced) return requested;
  return T >= tiledFrom ? 'tiled' : 'f32';
}

/** fp8_gemm_tiled's constants for this device and T tokens (see chooseGemm for the measurements). */
export function gemmTiledTuning(k: Kernels, T: number): GemmTiledTuning {
  // lavapipe, 7168→512 x 64 tokens, interleaved with the FMA ceiling (fraction of it): rt 8 tq 2 13.7 %,
  // rt 8 tq 1 12.4 %, rt 4 tq 4 10.2 %, fp8_gemm 4.6 %; before x went through workgroup memory rt 4 tq 4 ran 7 %
  // and rt 1 tq 1 2.1 %: the cost fell with rows per invocation (the x loads are shared by the rows), barely with
  // tokens. SwiftShader, 7168→512, interleaved: rt 8 tq 2 32.7 % (16 tokens) and 43.5 % (64) against
  // fp8_gemm's 11.8 / 10.8 %, rt 4 tq 2 32.2 % (docs/benchmarks.md "Prefill GEMM"). Hardware: rt 4 tq 4, the
  // usual 4 x 16 register tile; on the H200 it ran 0.63 ms flat from 16 to 256 tokens and 45.6 % of the FMA ceiling
  // at 512 (tiledGemmFrom); other constants not measured there yet. After x was staged as one vec4 per 4 columns of a token
  // (lavapipe 2048→2048 x 128, alternating with the previous commit: 1.2x and 1.6x; SwiftShader 1024→1024 x 64:
  // 0.96x and 1.65x), rt 8 tq 4 ran 1.2x, 1.4x (2048→2048 x 128) and 1.1x (7168→2048 x 64) faster than tq 2 on
  // lavapipe, interleaved, as in the tiled MoE kernels (moeTiledTuning).
  const hw = adapterClass(k.gpu) === 'hardware';
  const tq = 4;
  return { wg: 64, rt: hw ? 4 : 8, tq: Math.max(1, Math.min(tq, Math.ceil(T / 4))), f16bits: true };
}


// ------------------------------------------------------------------------------------------------------------
// MoE experts

/**
 * The decode-path variant used by default — the one place it is chosen:
 *   - GPUs with the feature: 'subgroup' (coalesced loads; no GPU measurement exists yet);
 *   - SwiftShader at wide rows (hidden ≥ 2048): 'subgroup'. Measured interleaved (docs/benchmarks.md,
 *     SwiftShader table): Kimi D7168 F2048 top-8 took 3.27 s with the subgroup kernels against 6.00 s
 *     thread-per-row (1.8x); at toy width (D256 F128) they lose, 16.7 vs 12.9 ms. The crossover between the two
 *     widths is unmeasured: 2048 splits them;
 *   - lavapipe and other CPU adapters: 'f32' (thread per row): equal at Kimi width (548 vs 543 ms), the
 *     subgroup kernels 1.2x slower at toy width.
 * `hidden` is the geometry's D (omitted: the toy-width choice).
 */
function preferSubgroups(k: Kernels, hidden = 0): boolean {
  if (!subgroupsFit(k) || !k.available('moe_gateup_id_subgroup') || !k.available('moe_down_id_subgroup')) return false;
  const cls = adapterClass(k.gpu);
  return cls === 'hardware' || (cls === 'swiftshader' && hidden >= 2048);
}

/**
 * The decode-path expert kernels for this device — the one place they are chosen:
 *   - CPU adapters: 'wide' (moe_*_id_wide: vec4<u32> loads, RPT rows per thread, unpack2x16float decode, as
 *     fp8_gemv_wide). Measured interleaved, one token, median ms (2-core machine under load ~8, so compare
 *     within a line; docs/benchmarks.md "Tuning"):
 *       lavapipe, Kimi D7168 F2048 top-8: f32 550, wide RPT 4/4 207 (2.7x), 2/4 219, 4/2 231, 4/4 with the
 *         f32 bit-trick decode 410; another run: f32 1075, subgroup 1175, wide 1/1 621, 2/2 513, 4/4 445;
 *       lavapipe, small D256 F128 top-8 of 32: f32 1.34, subgroup 1.69, wide 1/1 0.76, 2/2 0.56, 4/4 0.60;
 *       SwiftShader, small: f32 9.3, subgroup 12.2, wide 1/1 4.7, 2/2 4.3, 4/4 4.4, 2/2 f32-decode 5.3;
 *       SwiftShader, Kimi: f32 7653, subgroup 8009 (min 3841), wide 1/1 3799, 2/2 2843, 4/4 2195 (min 1550,
 *         3.5x the subgroup median), 2/4 2520.
 *     So 4 rows per thread in both kernels on both adapters (toy widths: within noise of 2);
 *   - otherwise (GPUs): preferSubgroups.
 * The FP8 choice; INT4 stacks take it too (subgroup -> f32: INT4 has no subgroup kernels), BF16 stacks run the
 * thread-per-row instances unless wide is asked for (decodeVariantFor).
 */
export function chooseMoeDecode(k: Kernels, hidden = 0): MoeDecodeVariant {
  const cls = adapterClass(k.gpu);
  if (cls !== 'hardware' && k.available('moe_gateup_id_wide') && k.available('moe_down_id_wide')) return 'wide';
  return preferSubgroups(k, hidden) ? 'subgroup' : 'f32';
}

/**
 * moe_*_id_subgroup's constants: 64 threads, 16 rows per workgroup, the values measured on SwiftShader at Kimi
 * widths (chooseMoeDecode) and on the H200 (docs/benchmarks/hardware-h200.html: 0.83 ms for Kimi D7168 F2048
 * top-8, the down kernel at ~163 GB/s against gate/up's ~590). The hardware bench sweeps other constants
 * (bench/cases.ts SUBGROUP_SWEEP); a GPU run that finds better ones makes this a per-adapter choice.
 */
export const MOE_SUBGROUP_TUNING: Readonly<MoeSubgroupTuning> = { wg: 64, rpwGateUp: 16, rpwDown: 16 };

/** moe_*_id_wide's constants for this device (see chooseMoeDecode for the measurements). */
export function moeWideTuning(k: Kernels): MoeWideTuning {
  void k; // the same on both measured CPU adapters (lavapipe, SwiftShader); GPUs do not run the wide kernels by default
  return { rptGateUp: 4, rptDown: 4, f16bits: true, wg: 64, xs: true };
}

/**
 * The grouped path's expert kernels (prefill chunks: moe_align's blocks of up to 16 (token, slot) pairs of one
 * expert) — the one place they are chosen: 'tiled' (moe_*_tiled.wgsl: RT weight rows per invocation against 4·TQ
 * pairs whose activations are staged in workgroup memory 128 columns at a time) on every adapter. Measured
 * interleaved against 'grouped' (moe_*_grouped.wgsl: a thread per weight row, activations read from the storage
 * buffer at workgroup-uniform addresses), all experts of the shape used, 64 tokens, one process per line, the
 * 2-core machine under another job's load (load average 3-4), GFLOP/s (docs/benchmarks.md "Prefill GEMM"):
 *   lavapipe D2048 F1024 E8 K8: grouped 1.5-3.5; tiled tq 2 rt 4 6.2, tq 2 rt 8 9.2, tq 4 rt 8 5.3-11.1 (2.9-3.4x
 *     grouped in the same run), wg 32 / 128 within noise of 64; rt 4 at tq 4 0.75x rt 8;
 *   lavapipe Kimi D7168 F2048 E16 K8: grouped 1.5-2.5, tiled tq 2 rt 8 4.1, tq 4 rt 8 5.1-5.4 (2.1-3.3x);
 *   SwiftShader D1024 F512 E8 K8: grouped 0.31, tiled tq 2 rt 4 1.26, tq 4 rt 8 1.76 (5.7x), tq 2 rt 8 0.83,
 *     tq 4 rt 4 0.65.
 * With the activations of the grouped kernels read from registers instead (an experiment, not a kernel: wrong
 * sums), the tiled kernel at tq 2 rt 4 ran 17-24 GFLOP/s on lavapipe: the activation loads bound these kernels,
 * and a taller register tile (rt 8) halves them per weight. GPUs: the same tiling; on the H200 (hardware-h200.html)
 * the tiled path ran Kimi D7168 F2048 E16 K8 x 64 tokens in 3.29 ms (29 % of the FMA ceiling) against 11.97 ms for
 * the grouped kernels (3.6x) and 27.7 ms for the by-id decode kernels over the same tokens.
 */
export function chooseMoePrefill(k: Kernels): MoePrefillVariant {
  void k; // every adapter class measured so far prefers it
  return 'tiled';
}

/** Any prefill chunk (a chunk never holds more tokens than this). */
const EVERY_CHUNK = 1 << 16;

/**
 * Up to how many tokens a prefill chunk's experts run the decode path's by-id kernels (moe_*_id_wide on CPU
 * adapters) instead of the grouped path (moe_align + moe_*_tiled): measured on `moe_experts_prefill small D256
 * F128 K8 of 32` (2026-12-05, docs/benchmarks.md "Short prefill chunks"):
 *   lavapipe: 8 tokens wide 3.33 ms, tiled 10.0 ms (3.0x); 64 tokens wide 27.6, tiled 28.3 (a tie): the whole
 *     chunk by id where the hidden size is that small (up to 1024: at Kimi widths the tiled kernels ran 5.1-5.4
 *     GFLOP/s against the wide ones' ~3.5, chooseMoePrefill);
 *   SwiftShader: 8 tokens wide 55 ms, tiled 131 ms (2.4x): 8 tokens there;
 *   GPUs (and wider models): 4, the grouped path beyond, as measured before (the grouped path reads each expert
 *     once per block of tokens).
 */
export function choosePrefillByIdExperts(k: Kernels, hidden: number): number {
  const cls = adapterClass(k.gpu);
  if (cls === 'hardware' || hidden > 1024) return 4;
  return cls === 'swiftshader' ? 8 : EVERY_CHUNK;
}

/**
 * The widest FP8 linear (columns) whose prefill runs the decode GEMV per token row (linear's perRow: TB rows per
 * invocation) instead of a GEMM: 1024 on lavapipe, none elsewhere. Measured interleaved on lavapipe (2026-12-05,
 * docs/benchmarks.md "Short prefill chunks"; tiled GEMM / GEMV rows, ms): 256->128 x 8 0.48 / 0.06, x 64 1.83 / 0.57
 * (the tiled kernel's 512-row workgroup mostly idle there; at 8..32 threads per workgroup still 0.67 ms);
 * 256->512 x 8 0.38 / 0.29, x 64 1.86 / 1.77; 512->512 x 64 4.19 / 4.02; 1024->512 x 8 1.27 / 1.14, x 64 8.74 /
 * 8.98; 2048->1024 x 64 28.2 / 45.1; 4096->2048 x 16 35.5 / 67.5. SwiftShader (its barriers are cheap next to its
 * per-row loads): 256->512 x 8 2.23 / 5.92, 1024->512 x 64 31.5 / 196: the GEMM. GPUs: the GEMM.
 */
export function choosePrefillGemvRows(k: Kernels, gemv: GemvVariant): number {
  return adapterClass(k.gpu) === 'llvmpipe' && gemv === 'wide' ? 1024 : 0;
}

/** moe_*_tiled's constants (see chooseMoePrefill for the measurements). */
export function moeTiledTuning(k: Kernels): MoeTiledTuning {
  void k;
  return { tq: 4, rt: 8, wg: 64 };
}

/**
 * The expert kernels of a batched decode step: one variant for every number of rows (batch invariance,
 * docs/batching.md), so the choice never depends on the batch. The decode path's own choice (chooseMoeDecode:
 * 'wide' on CPU adapters). Not 'union' (moe_*_union: each selected expert's rows read and decoded once per group of
 * up to 4 rows that chose it, bit-identical to the wide kernels with the same constants): measured interleaved on
 * lavapipe (bench row "moe_experts_prefill small D256 F128 K8 of 32 x 8 tokens", 2026-12-04) 3.21 ms against the
 * wide kernels' 3.17: a CPU adapter's expert kernels are bound by the multiply-adds and activation loads of each
 * (token, row), which grouping does not reduce, not by weight bytes or their decode (the first union kernels, one
 * row per thread, ran 2.7-3.3x slower). GPUs run the subgroup kernels, which the union ones do not reproduce bit for
 * bit.
 */
export function chooseMoeBatch(k: Kernels, hidden: number): MoeDecodeVariant {
  return chooseMoeDecode(k, hidden);
}

/** How a batched decode step runs its dense linears: see chooseBatchLinear. */
export type BatchLinear = 'gemv-rows' | 'gemm';

/**
 * The dense linears of a batched decode step, one kernel for any number of rows (batch invariance):
 *   - 'gemv-rows' where the decode GEMV is the wide family (CPU adapters): each row runs the one-token decode GEMV
 *     (grid y = row), so a batched row gets exactly a one-token decode's numbers. Measured on lavapipe (`small`,
 *     per-dispatch profile of a step, docs/batching.md): the 15 FP8 linears of a 1-row step took 3.35 ms as
 *     fp8_gemm and 0.99 ms as GEMVs; of an 8-row step 7.6 ms as fp8_gemm and 8.4 ms as GEMVs per row (the GEMV per
 *     row decodes the weights once per row, which a CPU adapter pays either way: decode and loads bound it, not
 *     bytes);
 *   - 'gemm' (fp8_gemm / bf16_gemm, 4 rows per thread) elsewhere: on a GPU, weight bytes bound the step and a GEMM
 *     reads them once for all rows.
 */
export function chooseBatchLinear(gemv: GemvVariant): BatchLinear {
  return gemv === 'wide' ? 'gemv-rows' : 'gemm';
}

/** The decode kernels a format runs for a requested variant (only FP8 has the subgroup kernels). */
export function decodeVariantFor(k: Kernels, format: ExpertFormat, hidden: number, asked?: MoeDecodeVariant): MoeDecodeVariant {
  if (asked === 'union') return 'union'; // every format
  if (format === 'fp8') return asked ?? chooseMoeDecode(k, hidden);
  // BF16: the thread-per-row kernels unless the wide ones are asked for; INT4: as FP8, wide for subgroup
  if (format === 'bf16') return asked === 'wide' ? 'wide' : 'f32';
  // INT4 has no subgroup kernels: on GPUs the thread-per-row ones. Measured on an NVIDIA H200
  // (docs/benchmarks/hardware-h200.html, kimi D7168 F2048 top-8): moe_*_id_int4 1.30 ms, moe_*_id_wide_int4 2.15 ms
  const v = asked ?? chooseMoeDecode(k, hidden);
  return v === 'subgroup' ? 'f32' : v;
}


/**
 * Whether a decode step's MoE routing is one dispatch (moe_router GATE: the post-attention RMSNorm, the BF16 gate
 * GEMV and the selection in one workgroup per token) rather than the gate GEMV (with its norm prologue) and then
 * moe_router, where the hidden row fits the router's workgroup memory (ops/moe.ts routerGateFits: up to hidden ~7200
 * with Kimi's 384 experts in 32 KiB). CPU adapters: measured (benchmarks.md "x through workgroup memory"); GPUs: not
 * chosen (one workgroup computes all E logits of its token, which would leave a GPU idle at Kimi widths; not
 * measured).
 */
export function chooseRouterGate(k: Kernels): boolean {
  return adapterClass(k.gpu) !== 'hardware';
}

// ------------------------------------------------------------------------------------------------------------
// MLA attention

/** How a one-token decode attention splits its keys (flash-decoding; chooseSplits in ops/attention.ts). */
export interface DecodeSplitRule {
  /** splits the decode scratch holds (partO: maxSplits x heads x R floats per row) */
  maxSplits: number;
  /** keys per split at least */
  minChunk: number;
  /** split until row blocks x splits reaches this many workgroups */
  targetWorkgroups: number;
}

/**
 * The decode key split for this device — the one place it is chosen:
 *   - CPU adapters: at most 16 splits of at least 256 keys, up to 32 workgroups (two cores need few workgroups;
 *     each split adds a partial to merge);
 *   - GPUs: up to 64 splits of at least 32 keys, up to 256 workgroups. Measured on an NVIDIA H200
 *     (docs/benchmarks/hardware-h200.html, mla_decode kimi H8 512+64): one workgroup of mla_attention walks its
 *     keys at ~10 µs per key (2.74 ms over 256 keys unsplit, 2.75 ms over 4096 in 16 splits of 256, 25.4 ms over
 *     32768 in 16 splits): the time follows the keys per workgroup, so the keys are spread over many workgroups.
 */
export function decodeSplitRule(gpu: GpuContext): DecodeSplitRule {
  return adapterClass(gpu) === 'hardware' ? GPU_DECODE_SPLITS : CPU_DECODE_SPLITS;
}
export const CPU_DECODE_SPLITS: Readonly<DecodeSplitRule> = { maxSplits: 16, minChunk: 256, targetWorkgroups: 32 };
export const GPU_DECODE_SPLITS: Readonly<DecodeSplitRule> = { maxSplits: 64, minChunk: 32, targetWorkgroups: 256 };

/**
 * Whether mla_attention_rows is the default (within its R ≤ 512, R + Dr ≤ 640 limits) — the one place it is
 * chosen. Measured (docs/benchmarks.md, interleaved against the tiled kernel):
 *   lavapipe: rows 1.9-3.6x faster at decode (Kimi H8 over 256-32k tokens) and ~3.5x at prefill → always;
 *   SwiftShader: rows 1.6-2.3x faster at decode (41 vs 66 ms over 256 tokens, 376 vs 642 ms over 4k, 5.2 vs
 *   8.6 s over 32k; 1.3-1.7x in Chromium) but only equal at prefill and slower to compile → decode (T = 1) only;
 *   GPUs: the tiled kernel (rows share cache tiles in workgroup memory).
 */
export function preferRows(gpu: GpuContext, T: number): boolean {
  const cls = adapterClass(gpu);
  return cls === 'llvmpipe' || (cls === 'swiftshader' && T === 1);
}

/** Private-array bounds of mla_attention_rows.wgsl: larger latent ranks take the tiled kernel. */
export const MLA_ROWS_MAX_R = 512;
export const MLA_ROWS_MAX_L = 640;

/** The attention kernel for T query tokens over a latent of rank R and row width L = R + Dr (preferRows within the bounds). */
export function attentionVariant(gpu: GpuContext, T: number, R: number, L: number): 'rows' | 'tiled' {
  return preferRows(gpu, T) && R <= MLA_ROWS_MAX_R && L <= MLA_ROWS_MAX_L ? 'rows' : 'tiled';
}

/**
 * Whether one-token decode without a key split runs mla_attend_rows (absorb_q, the rows walk and absorb_v in one
 * dispatch) instead of three: wherever the rows variant is the decode kernel. Measured (docs/benchmarks.md "Fused
 * decode dispatches", fused vs unfused, interleaved, per attention at no split): lavapipe 0.13 vs 0.38 ms
 * (`small` heads, 41 keys) and 63 vs 107 ms (Kimi K2: 64 heads, R 512, 201 keys); SwiftShader 1.2 vs 3.1 ms and
 * 438 vs 646 ms. The serial absorb products per invocation (R·(Dn + Dv) weights per head) cost less than the two
 * dispatches and the qLat / oLat round trips even at Kimi widths. GPUs keep the tiled kernel and the three
 * dispatches (rows share cache tiles there; a per-row serial absorb would waste the device).
 */
export function chooseAttendRows(gpu: GpuContext, R: number, L: number): boolean {
  return attentionVariant(gpu, 1, R, L) === 'rows';
}
