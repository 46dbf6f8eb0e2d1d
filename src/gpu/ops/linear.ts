/**
 * Linear layers on the GPU: y = x @ W^T with W stored as block-FP8 (E4M3 codes + F32 128x128 block scales) or
 * BF16, never dequantised to memory. One launcher, `linear`, picks the kernel:
 *   T = 1  → a GEMV: fp8_gemv (f32, barrier-free), fp8_gemv_wide (CPU adapters: vec4 loads, RPT rows per
 *            invocation, unpack2x16float decode), fp8_gemv_subgroup (hardware adapters with `subgroups`),
 *            fp8_gemv_f16 (opt-in f16 precision, `shader-f16`); bf16_gemv — see chooseGemv
 *   T > 1  → a GEMM: fp8_gemm_tiled (register tile of RT rows x 4·TQ tokens per invocation, vec4 loads,
 *            unpack2x16float decode) — see chooseGemm; fp8_gemm (one row x 4 tokens per thread) for forced
 *            GEMMs (batched decode rows); fp8_gemm_f16 (opt-in f16 precision); bf16_gemm
 * and records one dispatch per row chunk of the weight (a weight larger than maxStorageBufferBindingSize is
 * uploaded as several buffers of whole rows, each bound on its own).
 *
 * Upload layout (shared with the attention/MoE kernels, fp8-layout.ts): row r of the codes starts at word
 * r·strideWords, strideWords = roundUp(⌈cols / 4⌉, 4) for FP8 and roundUp(⌈cols / 2⌉, 4) for BF16, padding
 * bytes 0; scales are the checkpoint's weight_scale_inv unchanged [⌈rows/128⌉, ⌈cols/128⌉]. When the stored row
 * is already 16-byte aligned (every production shape) the tensor bytes are written as they are; otherwise rows
 * are re-laid through a bounded staging block (≤ 4 MiB), never a second full copy.
 *
 * Legend: T tokens, R rows (out features), C cols (in features).
 */
import { DeviceError, ShapeError } from '../../errors.js';
import type { LinearWeight } from '../../model/checkpoint.js';
import { createBuffer, writeBuffer, type UniformArena } from '../buffers.js';
import type { GpuContext } from '../device.js';
import type { Kernels } from '../kernels.js';
import { adapterClass } from './adapter-class.js';
import { params, requireBytes, requireInt, type Buf } from './binding.js';
import { rowStrideWordsFor, type WeightFormat } from './fp8-layout.js';

export type { WeightFormat } from './fp8-layout.js';

/** A contiguous range of rows held by one buffer. */
export interface RowChunk {
  rowStart: number;
  rows: number;
  codes: GPUBuffer;
}

/** A linear weight on the GPU, [rows, cols] = [out, in]. */
export interface GpuLinear {
  name: string;
  format: WeightFormat;
  rows: number;
  cols: number;
  /** u32 words per row in `codes`. */
  strideWords: number;
  /** Row chunks, in order, covering all rows (one chunk unless the tensor exceeds the binding limit). */
  chunks: RowChunk[];
  /** FP8: the block scales [⌈rows/128⌉, ⌈cols/128⌉] f32; null for BF16. */
  scales: GPUBuffer | null;
  /** GPU bytes held. */
  bytes: number;
}

/** u32 words per row in the upload layout. */
export function rowStrideWords(format: WeightFormat, cols: number): number {
  return rowStrideWordsFor(format, cols);
}

/** Rows per buffer so that each fits maxStorageBufferBindingSize (and maxBufferSize); DeviceError when one row cannot. */
export function rowsPerChunk(gpu: GpuContext, strideBytes: number, rows: number, name: string): number {
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const per = Math.floor(limit / strideBytes);
  if (per < 1) {
    throw new DeviceError(`tensor '${name}': one row needs ${strideBytes} bytes, more than maxStorageBufferBindingSize ${limit}`, {
      limit: 'maxStorageBufferBindingSize',
      value: limit,
      required: strideBytes,
    });
  }
  if (per >= rows) return rows;
  // whole 128-row blocks per chunk where possible (keeps a chunk's rows inside whole scale blocks)
  return per >= 128 ? Math.floor(per / 128) * 128 : per;
}

const STAGING_BYTES = 4 << 20;

/**
 * Writes rows [r0, r0 + n) of a row-major tensor (`rowBytes` bytes per stored row) into `buf` at byte
 * `dstOffset` with a padded stride, through staging blocks of at most 4 MiB (directly when no padding is needed).
 */
export function writeRows(gpu: GpuContext, buf: GPUBuffer, data: Uint8Array, r0: number, n: number, rowBytes: number, strideBytes: number, dstOffset = 0): void {
  if (rowBytes === strideBytes) {
    writeBuffer(gpu, buf, dstOffset, data.subarray(r0 * rowBytes, (r0 + n) * rowBytes));
    return;
  }
  const perBlock = Math.max(1, Math.floor(STAGING_BYTES / strideBytes));
  const staging = new Uint8Array(Math.min(n, perBlock) * strideBytes);
  for (let b = 0; b < n; b += perBlock) {
    const m = Math.min(perBlock, n - b);
    staging.fill(0);
    for (let r = 0; r < m; r++) {
      const src = (r0 + b + r) * rowBytes;
      staging.set(data.subarray(src, src + rowBytes), r * strideBytes);
    }
    writeBuffer(gpu, buf, dstOffset + b * strideBytes, staging.subarray(0, m * strideBytes));
  }
}

/**
 * Uploads one linear weight as stored (FP8 stays FP8, BF16 stays BF16), split into row chunks that each fit a
 * storage binding. `name` labels the buffers and errors.
 */
export function uploadLinear(gpu: GpuContext, name: string, w: LinearWeight): GpuLinear {
  const { rows, cols, format } = w;
  const strideWords = rowStrideWords(format, cols);
  const strideBytes = strideWords * 4;
  const rowBytes = format === 'fp8' ? cols : cols * 2;
  const bytes = format === 'fp8' ? w.data : new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
  if (bytes.byteLength !== rows * rowBytes) {
    throw new ShapeError(`tensor '${name}': ${bytes.byteLength} bytes do not make a [${rows}, ${cols}] ${format} matrix`, name, rows * rowBytes, bytes.byteLength);
  }
  const per = rowsPerChunk(gpu, strideBytes, rows, name);
  const chunks: RowChunk[] = [];
  let total = 0;
  for (let r0 = 0; r0 < rows; r0 += per) {
    const n = Math.min(per, rows - r0);
    const codes = createBuffer(gpu, n * strideBytes, chunks.length === 0 && n === rows ? name : `${name}[${r0}:${r0 + n}]`);
    writeRows(gpu, codes, bytes, r0, n, rowBytes, strideBytes);
    chunks.push({ rowStart: r0, rows: n, codes });
    total += codes.size;
  }
  let scales: GPUBuffer | null = null;
  if (w.format === 'fp8') {
    const want = Math.ceil(rows / 128) * Math.ceil(cols / 128);
    if (w.scale.length !== want) throw new ShapeError(`tensor '${name}_scale_inv': ${w.scale.length} scales, need ${want}`, name, want, w.scale.length);
    scales = createBuffer(gpu, w.scale.byteLength, `${name}_scale_inv`);
    writeBuffer(gpu, scales, 0, w.scale);
    total += scales.size;
  }
  return { name, format, rows, cols, strideWords, chunks, scales, bytes: total };
}

export function destroyLinear(w: GpuLinear): void {
  for (const c of w.chunks) c.codes.destroy();
  w.scales?.destroy();
}

/** Which GEMV kernel serves FP8 decode. */
export type GemvVariant = 'f32' | 'subgroup' | 'f16' | 'wide';

/** Override constants of fp8_gemv_wide (tests and the bench sweep them; the engine uses gemvWideTuning). */
export interface GemvWideTuning {
  /** rows per invocation, 1..8 */
  rpt: number;
  /** decode through f16 bit patterns + unpack2x16float (docs/kernels.md §3.1 (B)) instead of the f32 bit trick */
  f16bits: boolean;
  /** threads per workgroup */
  wg: number;
}

/**
 * The FP8 GEMV for this device — the one place the decode GEMV is chosen:
 *   - 'f16' only when asked (opt-in precision) and `shader-f16` exists;
 *   - CPU adapters: 'wide' (fp8_gemv_wide: vec4 loads, several rows per invocation, unpack2x16float decode).
 *     Measured interleaved at Kimi widths (docs/benchmarks.md "Tuning"): on lavapipe 2.2-2.5x faster than the
 *     f32 GEMV (7168→2048: 4.7 vs 10.4 ms; kv_a 7168→576: 1.3 vs 3.0 ms) and faster than fp8_gemv_subgroup
 *     on every shape; on SwiftShader 1.5x faster than f32 (60 vs 91 ms, 13.7 vs 21.1 ms), the subgroup GEMV
 *     being 1.7-1.9x slower than f32 there;
 *   - GPUs with `subgroups` of at most 64 lanes: 'subgroup' (coalesced loads; not measured here);
 *   - otherwise the barrier-free 'f32'.
 */
export function chooseGemv(k: Kernels, precision: 'f32' | 'f16' = 'f32'): GemvVariant {
  if (precision === 'f16' && k.available('fp8_gemv_f16')) return 'f16';
  if (adapterClass(k.gpu) !== 'hardware') return 'wide';
  // fp8_gemv_subgroup runs 64 threads per workgroup: it needs subgroups of at most 64 lanes
  const maxLanes = k.gpu.info.subgroupMaxSize ?? 64;
  if (maxLanes <= 64 && k.available('fp8_gemv_subgroup')) return 'subgroup';
  return 'f32';
}

/** fp8_gemv_wide's constants for this device (see chooseGemv for the measurements). */
export function gemvWideTuning(k: Kernels): GemvWideTuning {
  // lavapipe: 4-8 rows per invocation ran alike (3.0-3.2 GB/s at 7168→2048 and 7168→576) and 2 rows ~1.6x
  // slower; SwiftShader: 2 rows best at kv_a (13.7 ms vs 15.9 at 4), equal at 7168→2048 (docs/benchmarks.md)
  return { rpt: adapterClass(k.gpu) === 'llvmpipe' ? 4 : 2, f16bits: true, wg: 64 };
}

const GEMV_KERNEL: Record<GemvVariant, string> = { f32: 'fp8_gemv', subgroup: 'fp8_gemv_subgroup', f16: 'fp8_gemv_f16', wide: 'fp8_gemv_wide' };
/**
 * Which GEMM kernel serves FP8 prefill: 'f32' / 'f16' the thread-per-row kernels (fp8_gemm, fp8_gemm_f16: one
 * row x 4 tokens per thread, the f32 bit-trick decode); 'tiled' the register-blocked fp8_gemm_tiled (see
 * chooseGemm). The engine asks for 'f32' or 'f16' (its precision); `linear` serves an 'f32' prefill of enough
 * tokens with 'tiled'.
 */
export type GemmVariant = 'f32' | 'f16' | 'tiled';
const GEMM_KERNEL: Record<Exclude<GemmVariant, 'tiled'>, string> = { f32: 'fp8_gemm', f16: 'fp8_gemm_f16' };

/** Override constants of fp8_gemm_tiled (tests and the bench sweep them; the engine uses gemmTiledTuning). */
export interface GemmTiledTuning {
  /** invocations per workgroup (along rows) */
  wg: number;
  /** rows per invocation, 1..8 (rt·tq ≤ 16) */
  rt: number;
  /** token quads per invocation, 1..4 (4·tq tokens); fewer when T is smaller */
  tq: number;
  /** decode through f16 bit patterns + unpack2x16float (docs/kernels.md §3.1 (B)) instead of the f32 bit trick */
  f16bits: boolean;
}

/** Prefills of at least this many tokens take the tiled GEMM (an 'f32' request, not a forced batch GEMM). */
export const TILED_MIN_TOKENS = 2;

/**
 * The FP8 GEMM for a linear of T tokens — the one place the prefill GEMM is chosen:
 *   - 'f16' when asked (opt-in precision);
 *   - a forced GEMM (BatchSession's batched decode rows, `forceGemm`) keeps fp8_gemm whatever the row count:
 *     batch invariance needs one kernel for 1..S rows, and the tiled kernel's token tile would waste most of
 *     its work on a handful of rows;
 *   - otherwise, from TILED_MIN_TOKENS tokens on, 'tiled' (fp8_gemm_tiled) on every adapter. Measured
 *     interleaved at Kimi width 7168→2048 (docs/benchmarks.md "Prefill GEMM"): see gemmTiledTuning.
 */
export function chooseGemm(requested: GemmVariant, T: number, forced: boolean): GemmVariant {
  if (requested !== 'f32' || forced) return requested;
  return T >= TILED_MIN_TOKENS ? 'tiled' : 'f32';
}

/** fp8_gemm_tiled's constants for this device and T tokens (see chooseGemm for the measurements). */
export function gemmTiledTuning(k: Kernels, T: number): GemmTiledTuning {
  // lavapipe, 7168→512 x 64 tokens, interleaved with the FMA ceiling (fraction of it): rt 8 tq 2 13.7 %,
  // rt 8 tq 1 12.4 %, rt 4 tq 4 10.2 %, fp8_gemm 4.6 %; before x went through workgroup memory rt 4 tq 4 ran 7 %
  // and rt 1 tq 1 2.1 %: the cost fell with rows per invocation (the x loads are shared by the rows), barely with
  // tokens. SwiftShader, 7168→512, interleaved: rt 8 tq 2 32.7 % (16 tokens) and 43.5 % (64) against
  // fp8_gemm's 11.8 / 10.8 %, rt 4 tq 2 32.2 % (docs/benchmarks.md "Prefill GEMM"). Hardware: not measured here;
  // a 4 x 16 register tile is the usual GPU choice.
  const hw = adapterClass(k.gpu) === 'hardware';
  const tq = hw ? 4 : 2;
  return { wg: 64, rt: hw ? 4 : 8, tq: Math.max(1, Math.min(tq, Math.ceil(T / 4))), f16bits: true };
}

export interface LinearArgs {
  w: GpuLinear;
  /** [T, xStride] f32 at xOffset (elements); the first `cols` of each token row are read. */
  x: Buf;
  xOffset?: number;
  xStride?: number;
  /** [T, yStride] f32 at yOffset; columns 0 .. rows-1 of each token row are written. */
  y: Buf;
  yOffset?: number;
  yStride?: number;
  tokens: number;
  /** y += x @ W^T instead of y = (default false). */
  accumulate?: boolean;
  /** FP8 GEMV kernel for T = 1 (default 'f32'). */
  gemv?: GemvVariant;
  /** fp8_gemv_wide constants (default gemvWideTuning). */
  wide?: Partial<GemvWideTuning>;
  /** FP8 GEMM kernel for T > 1 (default 'f32'; see chooseGemm). */
  gemm?: GemmVariant;
  /** fp8_gemm_tiled constants (default gemmTiledTuning). */
  tiled?: Partial<GemmTiledTuning>;
  /** Force the GEMM kernel even for T = 1 (tests). */
  forceGemm?: boolean;
}

/** Records y (+)= x @ W^T: one dispatch per row chunk of W. Shapes are checked first (ShapeError). */
export function linear(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: LinearArgs): void {
  const w = a.w;
  const name = `linear(${w.name})`;
  requireInt(a.tokens, 1, name, 'tokens');
  const T = a.tokens;
  const xOffset = a.xOffset ?? 0;
  const yOffset = a.yOffset ?? 0;
  const xStride = a.xStride ?? w.cols;
  const yStride = a.yStride ?? w.rows;
  if (xStride < w.cols) throw new ShapeError(`${name}: xStride ${xStride} < cols ${w.cols}`, 'xStride', w.cols, xStride);
  if (yStride < w.rows) throw new ShapeError(`${name}: yStride ${yStride} < rows ${w.rows}`, 'yStride', w.rows, yStride);
  requireBytes(k.gpu, a.x, (xOffset + (T - 1) * xStride + w.cols) * 4, name, 'x');
  requireBytes(k.gpu, a.y, (yOffset + (T - 1) * yStride + w.rows) * 4, name, 'y');
  const acc = a.accumulate ? 1 : 0;
  const gemm = T > 1 || a.forceGemm === true;
  const WG = 64;
  if (w.format === 'fp8') {
    const scaleCols = Math.ceil(w.cols / 128);
    const variant = a.gemv ?? 'f32';
    const gv = chooseGemm(a.gemm ?? 'f32', T, a.forceGemm === true);
    const tiled = gemm && gv === 'tiled' ? { ...gemmTiledTuning(k, T), ...a.tiled } : null;
    const wide = !gemm && variant === 'wide' ? { ...gemvWideTuning(k), ...a.wide } : null;
    if ((wide || tiled) && w.strideWords % 4 !== 0) {
      throw new ShapeError(`${name}: ${wide ? 'fp8_gemv_wide' : 'fp8_gemm_tiled'} needs a stride of whole vec4 words`, 'strideWords', 4, w.strideWords);
    }
    if (wide && !(wide.rpt >= 1 && wide.rpt <= 8)) throw new ShapeError(`${name}: fp8_gemv_wide needs 1 ≤ rpt ≤ 8`, 'rpt', 8, wide.rpt);
    if (tiled && !(tiled.rt >= 1 && tiled.rt <= 8 && tiled.tq >= 1 && tiled.tq <= 4 && tiled.rt * tiled.tq <= 16)) {
      throw new ShapeError(`${name}: fp8_gemm_tiled needs 1 ≤ rt ≤ 8, 1 ≤ tq ≤ 4 and rt·tq ≤ 16`, 'tiled', 4, Math.max(tiled.rt, tiled.tq));
    }
    const pipe = tiled
      ? k.pipeline('fp8_gemm_tiled', { WG: tiled.wg, RT: tiled.rt, TQ: tiled.tq, F16BITS: tiled.f16bits ? 1 : 0 })
      : wide
        ? k.pipeline('fp8_gemv_wide', { WG: wide.wg, RPT: wide.rpt, F16BITS: wide.f16bits ? 1 : 0 })
        : k.pipeline(gemm ? GEMM_KERNEL[gv === 'f16' ? 'f16' : 'f32'] : GEMV_KERNEL[variant], { WG });
    for (const c of w.chunks) {
      const fields = [c.rows, w.cols, w.strideWords, c.rowStart, xOffset, yOffset, scaleCols, acc];
      const p = params(arena, gemm ? [...fields, T, xStride, yStride, 0] : fields);
      const bg = k.bindGroup(pipe, [c.codes, w.scales!, a.x, a.y, p]);
      if (tiled) k.dispatch(pass, pipe, bg, Math.ceil(c.rows / (tiled.wg * tiled.rt)), Math.ceil(T / (4 * tiled.tq)));
      else if (gemm) k.dispatch(pass, pipe, bg, Math.ceil(c.rows / WG), Math.ceil(T / 4));
      else if (variant === 'subgroup') k.dispatch(pass, pipe, bg, Math.ceil(c.rows / 4));
      else if (wide) k.dispatch(pass, pipe, bg, Math.ceil(c.rows / (wide.wg * wide.rpt)));
      else k.dispatch(pass, pipe, bg, Math.ceil(c.rows / WG));
    }
  } else {
    const kernel = gemm ? 'bf16_gemm' : 'bf16_gemv';
    const pipe = k.pipeline(kernel, { WG });
    for (const c of w.chunks) {
      const fields = [c.rows, w.cols, w.strideWords, c.rowStart, xOffset, yOffset, acc];
      const p = params(arena, gemm ? [...fields, T, xStride, yStride, 0, 0] : [...fields, 0]);
      const bg = k.bindGroup(pipe, [c.codes, a.x, a.y, p]);
      k.dispatch(pass, pipe, bg, Math.ceil(c.rows / WG), gemm ? Math.ceil(T / 4) : 1);
    }
  }
}
