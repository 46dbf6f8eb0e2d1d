/**
 * Linear layers on the GPU: y = x @ W^T with W stored as block-FP8 (E4M3 codes + F32 128x128 block scales), BF16
 * or INT4 (compressed-tensors pack-quantized, group 32), never dequantised to memory. One launcher, `linear`,
 * picks the kernel:
 *   FP8,  T = 1  → a GEMV: fp8_gemv (f32, barrier-free), fp8_gemv_wide (CPU adapters: vec4 loads, RPT rows per
 *                  invocation, unpack2x16float decode), fp8_gemv_subgroup (hardware adapters with `subgroups`),
 *                  fp8_gemv_f16 (opt-in f16 precision, `shader-f16`) — see chooseGemv
 *   FP8,  T > 1  → a GEMM: fp8_gemm_tiled (register tile of RT rows x 4·TQ tokens per invocation, vec4 loads,
 *                  unpack2x16float decode) — see chooseGemm; fp8_gemm (one row x 4 tokens per thread) for forced
 *                  GEMMs (batched decode rows); fp8_gemm_f16 (opt-in f16 precision)
 *   BF16, T = 1  → fp8_gemv_wide_bf16 (the BF16 instance of the fp8_gemv_wide family, on CPU adapters: 2-3x
 *                  faster than the thread-per-row bf16_gemv it replaced on lavapipe, 2-5x on SwiftShader; gemvWideTuning),
 *                  fp8_gemv_subgroup_bf16 where the FP8 GEMV is the subgroup one (GPUs) and no norm is fused
 *   BF16, T > 1  → bf16_gemm (and forced GEMMs)
 *   INT4, any T  → fp8_gemv_wide_int4 (the INT4 instance of the family), prefill as the GEMV per token row (grid
 *                  y = token; see linear): only routed experts need fast INT4 kernels (docs/model.md §13), a dense
 *                  INT4 linear is allowed but rare, so it has no GEMM of its own; fp8_gemv_subgroup_int4 for one
 *                  token as BF16
 * and records one dispatch per row chunk of the weight (a weight larger than maxStorageBufferBindingSize is
 * uploaded as several buffers of whole rows, each bound on its own). Where the fp8_gemv_wide family runs
 * (fusesNorm), `norm` RMSNorms the input rows on the fly (the kernel's NORM prologue; with `norm.out` the normalised
 * rows are written on the side, XN): docs/kernels.md "Fused decode dispatches".
 *
 * Upload layout (shared with the attention/MoE kernels, fp8-layout.ts): row r of the codes starts at word
 * r·strideWords, strideWords = roundUp(⌈cols / 4⌉, 4) for FP8, roundUp(⌈cols / 2⌉, 4) for BF16 and
 * roundUp(⌈cols / 8⌉, 4) for INT4, padding bytes 0; FP8 scales are the checkpoint's weight_scale_inv unchanged
 * [⌈rows/128⌉, ⌈cols/128⌉], INT4 scales the group scales widened to f32 [rows, ⌈cols/32⌉] (as int4StackLayout
 * lays out one matrix). When the stored row is already 16-byte aligned (every production shape) the tensor bytes
 * are written as they are; otherwise rows are re-laid through a bounded staging block (≤ 4 MiB), never a second
 * full copy.
 *
 * Legend: T tokens, R rows (out features), C cols (in features).
 */
import { DeviceError, FormatError, ShapeError } from '../../errors.js';
import { createBuffer, writeBuffer, type UniformArena } from '../buffers.js';
import type { GpuContext } from '../device.js';
import type { Kernels } from '../kernels.js';
import { adapterClass } from './adapter-class.js';
import { requireBytes, requireInt, requireSubgroupWorkgroup, type Buf } from './binding.js';
import { INT4_GROUP, linearRowStrideWords, scaleColumns, type LinearFormat } from './fp8-layout.js';
import { stagedCapacity, stagedRowVec4 } from './staging.js';
import { unusedBuffer, unusedWritable } from './unused.js';
import { chooseGemm, gemmTiledTuning, GEMV_SUBGROUP_WG, gemvWideTuning, tiledGemmFrom } from '../plan.js';

export type { LinearFormat, WeightFormat } from './fp8-layout.js';

/**
 * A dense linear weight as the host holds it, [rows, cols] = [out, in]: FP8 codes + block scales, BF16 codes, or
 * INT4 packed words + group scales widened to f32. Structurally model/checkpoint.ts StoredLinear (what
 * readStoredLinear returns), declared here because the GPU layer imports no model code (docs/architecture.md,
 * "Folders").
 */
export type HostLinear =
  | { format: 'fp8'; rows: number; cols: number; data: Uint8Array; scale: Float32Array }
  | { format: 'bf16'; rows: number; cols: number; data: Uint16Array }
  | { format: 'int4'; rows: number; cols: number; groupSize: number; data: Uint32Array; scale: Float32Array };

/**
 * Two host linears that read the same input, stacked into one [bRow + b.rows, cols] matrix so one GEMV (or GEMM)
 * computes both: rows [0, a.rows) are a's, rows [bRow, bRow + b.rows) b's, rows between are zero codes (zero
 * scales). FP8 puts b at a whole 128-row scale block (bRow = a.rows rounded up to 128: a block's one scale cannot
 * serve rows of both matrices); BF16 and INT4 (per-row group scales) stack b right after a. Every row's numbers are
 * exactly those of its own matrix (the same codes, scales and column order). Null when the two cannot share a matrix
 * (formats, column counts or INT4 group sizes differ).
 */
export function stackLinears(a: HostLinear, b: HostLinear): { w: HostLinear; bRow: number } | null {
  if (a.format !== b.format || a.cols !== b.cols) return null;
  const cols = a.cols;
  if (a.format === 'fp8' && b.format === 'fp8') {
    const bRow = Math.ceil(a.rows / 128) * 128;
    const rows = bRow + b.rows;
    const data = new Uint8Array(rows * cols);
    data.set(a.data, 0);
    data.set(b.data, bRow * cols);
    const sc = Math.ceil(cols / 128);
    const scale = new Float32Array(Math.ceil(rows / 128) * sc);
    scale.set(a.scale, 0);
    scale.set(b.scale, (bRow / 128) * sc);
    return { w: { format: 'fp8', rows, cols, data, scale }, bRow };
  }
  if (a.format === 'bf16' && b.format === 'bf16') {
    const data = new Uint16Array((a.rows + b.rows) * cols);
    data.set(a.data, 0);
    data.set(b.data, a.rows * cols);
    return { w: { format: 'bf16', rows: a.rows + b.rows, cols, data }, bRow: a.rows };
  }
  if (a.format === 'int4' && b.format === 'int4' && a.groupSize === b.groupSize) {
    const concat = <T extends Uint32Array | Float32Array>(x: T, y: T, out: T): T => {
      out.set(x, 0);
      out.set(y, x.length);
      return out;
    };
    return {
      w: {
        format: 'int4', rows: a.rows + b.rows, cols, groupSize: a.groupSize,
        data: concat(a.data, b.data, new Uint32Array(a.data.length + b.data.length)),
        scale: concat(a.scale, b.scale, new Float32Array(a.scale.length + b.scale.length)),
      },
      bRow: a.rows,
    };
  }
  return null;
}

/** A contiguous range of rows held by one buffer. */
export interface RowChunk {
  rowStart: number;
  rows: number;
  codes: GPUBuffer;
}

/** A linear weight on the GPU, [rows, cols] = [out, in]. */
export interface GpuLinear {
  name: string;
  format: LinearFormat;
  rows: number;
  cols: number;
  /** u32 words per row in `codes`. */
  strideWords: number;
  /** Row chunks, in order, covering all rows (one chunk unless the tensor exceeds the binding limit). */
  chunks: RowChunk[];
  /** FP8: the block scales [⌈rows/128⌉, ⌈cols/128⌉] f32; INT4: the group scales [rows, ⌈cols/32⌉] f32; null for BF16. */
  scales: GPUBuffer | null;
  /** GPU bytes held. */
  bytes: number;
}

/** u32 words per row in the upload layout. */
export function rowStrideWords(format: LinearFormat, cols: number): number {
  return linearRowStrideWords(format, cols);
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
 * Uploads one linear weight as stored (FP8 stays FP8, BF16 stays BF16, INT4 stays INT4), split into row chunks that
 * each fit a storage binding. `name` labels the buffers and errors. INT4: the packed words with rows padded to 16
 * bytes (int4RowStrideWords) and the group scales as f32 [rows, ⌈cols/32⌉] in one buffer (bound whole by every row
 * chunk); a group size other than 32 is a FormatError naming the tensor.
 */
export function uploadLinear(gpu: GpuContext, name: string, w: HostLinear): GpuLinear {
  const { rows, cols, format } = w;
  if (w.format === 'int4' && w.groupSize !== INT4_GROUP) {
    throw new FormatError(`is stored INT4 with group size ${w.groupSize}; the GPU kernels take group size ${INT4_GROUP} only (Kimi's, docs/model.md §13)`, undefined, name);
  }
  const strideWords = rowStrideWords(format, cols);
  const strideBytes = strideWords * 4;
  const rowBytes = format === 'fp8' ? cols : format === 'int4' ? Math.ceil(cols / 8) * 4 : cols * 2;
  const bytes = w.format === 'fp8' ? w.data : new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
  if (bytes.byteLength !== rows * rowBytes) {
    throw new ShapeError(`tensor '${name}': ${bytes.byteLength} bytes do not make a [${rows}, ${cols}] ${format} matrix`, name, rows * rowBytes, bytes.byteLength);
  }
  let scaleData: Float32Array | null = null;
  let scaleLabel = '';
  if (w.format === 'fp8') {
    const want = Math.ceil(rows / 128) * Math.ceil(cols / 128);
    if (w.scale.length !== want) throw new ShapeError(`tensor '${name}_scale_inv': ${w.scale.length} scales, need ${want}`, name, want, w.scale.length);
    scaleData = w.scale;
    scaleLabel = `${name}_scale_inv`;
  } else if (w.format === 'int4') {
    const want = rows * scaleColumns('int4', cols);
    if (w.scale.length !== want) throw new ShapeError(`tensor '${name}_scale': ${w.scale.length} scales, need ${want} ([${rows}, ${scaleColumns('int4', cols)}])`, name, want, w.scale.length);
    const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
    if (w.scale.byteLength > limit) {
      throw new DeviceError(`tensor '${name}': its INT4 group scales need ${w.scale.byteLength} bytes in one binding, more than maxStorageBufferBindingSize ${limit}`, {
        limit: 'maxStorageBufferBindingSize',
        value: limit,
        required: w.scale.byteLength,
      });
    }
    scaleData = w.scale;
    scaleLabel = `${name}_scale`;
  }
  const per = rowsPerChunk(gpu, strideBytes, rows, name);
  const chunks: RowChunk[] = [];
  let total = 0;
  let scales: GPUBuffer | null = null;
  try {
    for (let r0 = 0; r0 < rows; r0 += per) {
      const n = Math.min(per, rows - r0);
      const codes = createBuffer(gpu, n * strideBytes, chunks.length === 0 && n === rows ? name : `${name}[${r0}:${r0 + n}]`);
      chunks.push({ rowStart: r0, rows: n, codes });
      writeRows(gpu, codes, bytes, r0, n, rowBytes, strideBytes);
      total += codes.size;
    }
    if (scaleData) {
      scales = createBuffer(gpu, Math.max(16, scaleData.byteLength), scaleLabel);
      writeBuffer(gpu, scales, 0, scaleData);
      total += scales.size;
    }
  } catch (err) {
    for (const c of chunks) c.codes.destroy();
    scales?.destroy();
    throw err;
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
  /**
   * most tokens per invocation when T > 1 (batched decode rows, INT4 prefill), 1..8: each weight chunk decoded once
   * for them (TB, shaders/fp8_gemv_wide.wgsl); a token's sums are those of the one-token GEMV whatever TB
   */
  tb: number;
  /**
   * stage the tokens' x rows in workgroup memory (XS, shaders/fp8_gemv_wide.wgsl) where they fit; the
   * fused RMSNorm (`norm`) needs it
   */
  xs: boolean;
}

/** Tokens per invocation of fp8_gemv_wide for T tokens: a power of two up to `most`, so few pipelines serve any T. */
export function gemvTokensPerInvocation(T: number, most: number): number {
  let tb = 1;
  while (tb < T && tb * 2 <= most) tb *= 2;
  return tb;
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
  /** rows per invocation, 1..8 */
  rt: number;
  /** token quads per invocation, 1..4 (4·tq tokens); fewer when T is smaller */
  tq: number;
  /** decode through f16 bit patterns + unpack2x16float (docs/kernels.md §3.1 (B)) instead of the f32 bit trick */
  f16bits: boolean;
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
  /** FP8 GEMV kernel for T = 1 (default 'f32'); BF16 and INT4 run their fp8_gemv_subgroup instance for 'subgroup'
   * (without a fused norm), else their fp8_gemv_wide instance. */
  gemv?: GemvVariant;
  /** fp8_gemv_wide family constants (default gemvWideTuning; f16bits applies to FP8 only). */
  wide?: Partial<GemvWideTuning>;
  /** FP8 GEMM kernel for T > 1 (default 'f32'; see chooseGemm). */
  gemm?: GemmVariant;
  /** fp8_gemm_tiled constants (default gemmTiledTuning). */
  tiled?: Partial<GemmTiledTuning>;
  /** threads per workgroup of fp8_gemv_subgroup (default GEMV_SUBGROUP_WG, plan.ts) */
  subgroupWg?: number;
  /** Force the GEMM kernel even for T = 1 (batched decode rows, tests); INT4 has no GEMM: the GEMV per row. */
  forceGemm?: boolean;
  /**
   * Batched decode rows on the wide GEMV family (KernelPlan.batchLinear 'gemv-rows'): each token row runs the
   * one-token decode GEMV of its format (grid y = token), so a row's numbers are those of a one-token decode
   * whatever the other rows. Only with `gemv` 'wide' for FP8 (BF16 and INT4 decode on the family anyway).
   */
  perRow?: boolean;
  /**
   * RMSNorm the input on the fly (fp8_gemv_wide's NORM prologue, docs/kernels.md "Fused decode dispatches"):
   * y = W · RMSNorm(x, weight, eps) with x the raw rows. Only where the launch runs the fp8_gemv_wide family
   * (fusesNorm); elsewhere a ShapeError: the caller keeps its rmsnorm dispatch.
   */
  norm?: {
    weight: Buf;
    eps: number;
    /** also write the normalised rows here, in x's layout (xOffset, xStride); never x's or y's buffer */
    out?: Buf;
  };
}

/** Bytes of fp8_gemv_wide's workgroup arrays beside xs: NORM's partial sums (xss, TB·WG floats). */
function xssBytes(wg: number, TB: number, norm: boolean): number {
  return norm ? 4 * TB * wg : 4;
}

type WideLaunch = Pick<LinearArgs, 'w' | 'tokens' | 'wide'>;

/**
 * fp8_gemv_wide's tokens per invocation (TB) and xs capacity in vec4s (XSN, 0: x unstaged) for this launch. Where
 * the tuning stages x, TB halves until the rows fit workgroup memory (TB changes no result bit, XS neither), so x
 * is staged whenever one token's row fits.
 */
function wideLaunch(k: Kernels, a: WideLaunch, norm: boolean): { TB: number; xsn: number } {
  const wide = { ...gemvWideTuning(k, a.w.format), ...a.wide };
  let TB = gemvTokensPerInvocation(a.tokens, wide.tb);
  if (!wide.xs) return { TB, xsn: 0 };
  for (;;) {
    const xsn = stagedCapacity(k, stagedRowVec4(a.w.cols, TB), xssBytes(wide.wg, TB, norm));
    if (xsn > 0 || TB === 1) return { TB, xsn };
    TB /= 2;
  }
}

/**
 * Whether `linear` runs the fp8_gemv_wide family for these arguments with x staged in workgroup memory (and so can
 * take `norm`): INT4 at any T, BF16 decode, FP8 decode with gemv 'wide', per-row batched GEMVs, whose x row (one
 * token's: the launch lowers its tokens per invocation until its rows fit) fits workgroup memory
 * (GemvWideTuning.xs). The answer does not depend on `tokens`: a batched decode row and a one-token decode fuse the
 * same norms, so their numbers stay the same.
 */
export function fusesNorm(k: Kernels, a: Pick<LinearArgs, 'w' | 'tokens' | 'gemv' | 'forceGemm' | 'perRow' | 'wide'>): boolean {
  return runsWideFamily(a) && wideLaunch(k, { ...a, tokens: 1 }, true).xsn > 0;
}

/** Whether `linear` runs the fp8_gemv_wide family for these arguments: see fusesNorm. */
function runsWideFamily(a: Pick<LinearArgs, 'w' | 'tokens' | 'gemv' | 'forceGemm' | 'perRow'>): boolean {
  const gemm = a.tokens > 1 || a.forceGemm === true;
  if (a.w.format === 'int4' || a.perRow) return true;
  if (a.w.format === 'bf16') return !gemm;
  return !gemm && a.gemv === 'wide';
}

/**
 * The dense GEMV family's instance for a weight format: fp8_gemv_wide (FP8), fp8_gemv_wide_bf16, fp8_gemv_wide_int4
 * (one source, shaders/fp8_gemv_wide.wgsl `// #formats fp8 bf16 int4`).
 */
export function gemvWideKernel(format: LinearFormat): string {
  return format === 'fp8' ? 'fp8_gemv_wide' : `fp8_gemv_wide_${format}`;
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
  const gemm = T > 1 || a.forceGemm === true;
  if (a.perRow && w.format === 'fp8' && (a.gemv ?? 'f32') !== 'wide') {
    throw new ShapeError(`${name}: per-row GEMVs need the wide FP8 GEMV (gemv '${a.gemv ?? 'f32'}'); use forceGemm`, 'gemv');
  }
  if (a.norm && !fusesNorm(k, a)) throw new ShapeError(`${name}: a fused RMSNorm needs the fp8_gemv_wide family with x staged in workgroup memory (fusesNorm: ${w.cols} columns x ${a.tokens} tokens)`, 'norm');
  // the kernel reads the norm weight as vec4: padded to whole vec4 with finite values (zeros)
  if (a.norm) requireBytes(k.gpu, a.norm.weight, Math.ceil(w.cols / 4) * 16, name, 'norm.weight');
  if (a.norm && !(a.norm.eps > 0)) throw new ShapeError(`${name}: eps must be > 0, got ${a.norm.eps}`, 'eps');
  if (a.norm?.out) {
    requireBytes(k.gpu, a.norm.out, (xOffset + (T - 1) * xStride + w.cols) * 4, name, 'norm.out');
    const ob = bufferOf(a.norm.out);
    if (ob === bufferOf(a.x) || ob === bufferOf(a.y)) throw new ShapeError(`${name}: norm.out must be a buffer distinct from x and y`, 'norm.out');
  }
  const WG = 64;
  // every dense linear kernel takes these Params (shaders/include/linear.wgsl), per row chunk with its rows and rowStart
  const params: LinearParams = {
    cols: w.cols, stride: w.strideWords, xOffset, yOffset, scaleCols: scaleColumns(w.format, w.cols), accumulate: a.accumulate ? 1 : 0,
    T, xStride, yStride,
  };
  if (!gemm && !a.perRow && !a.norm && a.gemv === 'subgroup' && (w.format === 'fp8' || k.available(gemvSubgroupKernel(w.format)))) {
    // GPUs: the decode GEMV of every format through the subgroup family (the wide family keeps the fused norm and
    // the per-row GEMVs; FP8 refuses those with 'subgroup' above)
    gemvSubgroup(k, pass, arena, a, name, params);
    return;
  }
  if (w.format === 'int4' || (w.format === 'bf16' && !gemm) || a.perRow) {
    // The GEMV family for INT4 (any T) and BF16 decode. INT4 prefill (T > 1, and forced GEMMs: batched decode
    // rows) is the GEMV per token row, grid y = token: correct and batch-invariant (each row alone), but it reads
    // the weight once per token where a GEMM would once per tile. Only routed experts need fast INT4 kernels
    // (docs/model.md §13: INT4 is accepted wherever it is stored); a dense INT4 linear prefills at GEMV speed.
    gemvWide(k, pass, arena, a, name, params);
    return;
  }
  if (w.format === 'fp8') {
    const variant = a.gemv ?? 'f32';
    const gv = chooseGemm(a.gemm ?? 'f32', T, a.forceGemm === true, tiledGemmFrom(k));
    const tiled = gemm && gv === 'tiled' ? { ...gemmTiledTuning(k, T), ...a.tiled } : null;
    if (!gemm && variant === 'wide') {
      gemvWide(k, pass, arena, a, name, params);
      return;
    }
    if (tiled && w.strideWords % 4 !== 0) {
      throw new ShapeError(`${name}: fp8_gemm_tiled needs a stride of whole vec4 words`, 'strideWords', 4, w.strideWords);
    }
    if (tiled && !(tiled.rt >= 1 && tiled.rt <= 8 && tiled.tq >= 1 && tiled.tq <= 4)) {
      throw new ShapeError(`${name}: fp8_gemm_tiled needs 1 ≤ rt ≤ 8 and 1 ≤ tq ≤ 4`, 'tiled', 4, Math.max(tiled.rt, tiled.tq));
    }
    const kernel = tiled ? 'fp8_gemm_tiled' : gemm ? GEMM_KERNEL[gv === 'f16' ? 'f16' : 'f32'] : GEMV_KERNEL[variant];
    const constants: Record<string, number> = tiled ? { WG: tiled.wg, RT: tiled.rt, TQ: tiled.tq, F16BITS: tiled.f16bits ? 1 : 0 } : { WG };
    for (const c of w.chunks) {
      const grid: [number, number?] = tiled
        ? [Math.ceil(c.rows / (tiled.wg * tiled.rt)), Math.ceil(T / (4 * tiled.tq))]
        : gemm ? [Math.ceil(c.rows / WG), Math.ceil(T / 4)] : [variant === 'subgroup' ? Math.ceil(c.rows / 4) : Math.ceil(c.rows / WG)];
      k.run(pass, arena, kernel, {
        constants,
        bind: { w: c.codes, scale: w.scales!, x: a.x, y: a.y },
        params: { ...params, rows: c.rows, rowStart: c.rowStart },
        grid,
      });
    }
  } else {
    for (const c of w.chunks) {
      k.run(pass, arena, 'bf16_gemm', {
        constants: { WG },
        bind: { w: c.codes, x: a.x, y: a.y },
        params: { ...params, rows: c.rows, rowStart: c.rowStart },
        grid: [Math.ceil(c.rows / WG), Math.ceil(T / 4)],
      });
    }
  }
}

function bufferOf(b: Buf): GPUBuffer {
  return 'buffer' in b ? b.buffer : b;
}

/** The Params of the dense linear kernels (shaders/include/linear.wgsl) but the row chunk's rows and rowStart. */
interface LinearParams {
  cols: number;
  stride: number;
  xOffset: number;
  yOffset: number;
  scaleCols: number;
  accumulate: number;
  T: number;
  xStride: number;
  yStride: number;
}

/**
 * The fp8_gemv_wide family (FP8 'wide' decode, BF16 decode, INT4 any T): one dispatch per row chunk and per run of
 * at most maxComputeWorkgroupsPerDimension tokens (grid y = token).
 */
/** The subgroup GEMV family's instance for a weight format (shaders/fp8_gemv_subgroup.wgsl `// #formats fp8 bf16 int4`). */
export function gemvSubgroupKernel(format: LinearFormat): string {
  return format === 'fp8' ? 'fp8_gemv_subgroup' : `fp8_gemv_subgroup_${format}`;
}

/** One token through the subgroup family: 4 rows per workgroup, a.subgroupWg (default GEMV_SUBGROUP_WG) threads. */
function gemvSubgroup(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: LinearArgs, name: string, params: LinearParams): void {
  const w = a.w;
  const kernel = gemvSubgroupKernel(w.format);
  const WG = a.subgroupWg ?? GEMV_SUBGROUP_WG;
  requireSubgroupWorkgroup(k.gpu, WG, 256, `${name}: ${kernel}`, 'subgroupWg');
  const scales = w.scales ?? unusedBuffer(k);
  for (const c of w.chunks) {
    k.run(pass, arena, kernel, {
      constants: { WG },
      bind: { w: c.codes, scale: scales, xin: a.x, y: a.y },
      params: { ...params, rows: c.rows, rowStart: c.rowStart },
      grid: [Math.ceil(c.rows / 4)],
    });
  }
}

function gemvWide(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: LinearArgs, name: string, params: LinearParams): void {
  const w = a.w;
  const kernel = gemvWideKernel(w.format);
  const wide = { ...gemvWideTuning(k, w.format), ...a.wide };
  if (w.strideWords % 4 !== 0) throw new ShapeError(`${name}: ${kernel} needs a stride of whole vec4 words`, 'strideWords', 4, w.strideWords);
  if (!(Number.isInteger(wide.rpt) && wide.rpt >= 1 && wide.rpt <= 8)) throw new ShapeError(`${name}: ${kernel} needs 1 ≤ rpt ≤ 8`, 'rpt', 8, wide.rpt);
  if (!(Number.isInteger(wide.tb) && wide.tb >= 1 && wide.tb <= 8)) throw new ShapeError(`${name}: ${kernel} needs 1 ≤ tb ≤ 8`, 'tb', 8, wide.tb);
  const { TB, xsn } = wideLaunch(k, a, a.norm !== undefined);
  // F16BITS is an override of the FP8 instance only (format_fp8.wgsl)
  const constants: Record<string, number> = w.format === 'fp8' ? { WG: wide.wg, RPT: wide.rpt, F16BITS: wide.f16bits ? 1 : 0, TB } : { WG: wide.wg, RPT: wide.rpt, TB };
  if (xsn > 0) Object.assign(constants, { XS: 1, XSN: xsn });
  if (a.norm) {
    if (xsn === 0) throw new ShapeError(`${name}: a fused RMSNorm needs x staged in workgroup memory`, 'norm');
    Object.assign(constants, { NORM: 1, EPS: a.norm.eps, XN: a.norm.out ? 1 : 0, XSS: TB * wide.wg });
  }
  const scales = w.scales ?? unusedBuffer(k);
  const nw = a.norm?.weight ?? unusedBuffer(k);
  const xn = a.norm?.out ?? unusedWritable(k);
  const { T, xOffset, yOffset, xStride, yStride } = params;
  const maxT = (k.gpu.limits.maxComputeWorkgroupsPerDimension || 65535) * TB;
  for (const c of w.chunks) {
    for (let t0 = 0; t0 < T; t0 += maxT) {
      const n = Math.min(maxT, T - t0);
      k.run(pass, arena, kernel, {
        constants,
        bind: { w: c.codes, scale: scales, xin: a.x, y: a.y, nw, xn },
        params: { ...params, rows: c.rows, rowStart: c.rowStart, xOffset: xOffset + t0 * xStride, yOffset: yOffset + t0 * yStride, T: n },
        grid: [Math.ceil(c.rows / (wide.wg * wide.rpt)), Math.ceil(n / TB)],
      });
    }
  }
}
