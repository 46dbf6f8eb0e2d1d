/**
 * The GPU upload layout of block-FP8 weights, shared by every FP8 kernel (dense GEMV/GEMM, attention absorb, experts;
 * uploadLinear / uploadExpertGroup write exactly this layout).
 *
 *   codes:  each row of a [rows, cols] FP8 matrix starts on a 16-byte boundary: row r occupies u32 words
 *           [r * rowStrideWords, r * rowStrideWords + ceil(cols / 4)), little-endian, code j of the row in
 *           byte (j % 4) of word (j / 4); the padding bytes up to rowStrideWords are 0 (= +0.0, never read
 *           as data: kernels mask the ragged tail word).
 *           rowStrideWords = roundUp(ceil(cols / 4), 4)   (fp8RowStrideWords). When cols % 16 == 0 (every
 *           production shape) this is exactly the safetensors bytes, no copy needed.
 *   scales: the checkpoint's `weight_scale_inv` unchanged: f32 [ceil(rows/128), ceil(cols/128)], row-major.
 *
 * Why padded rows: toy and production shapes have rows whose byte length is not a multiple of 4 (golden
 * `ragged`: D = 200, Fm = 72 are, but e.g. cols = 150 would not be), and WGSL can only read u32 words; with
 * every row starting on a word the kernels never straddle two rows in one word.
 *
 * Stacks: several same-shape matrices packed back to back in ONE buffer (all experts of a layer), matrix m at
 * word m * matrixWords, its scales at float m * matrixScales (fp8StackLayout). The experts' gate_up stack
 * interleaves per expert [gate_e, up_e] (matrix 2e = gate, 2e + 1 = up); down is one matrix per expert.
 * An upload without a second full copy: create the buffer with size count * matrixWords * 4 and write each
 * matrix's packFp8Rows(...).bytes at byte offset m * matrixWords * 4 (queue.writeBuffer per matrix).
 *
 * Stacks larger than maxStorageBufferBindingSize are split into shards of whole experts (expertShards): one
 * buffer pair (codes, scales) per shard; the MoE launchers take the shard list and record one dispatch per
 * shard, each handling only the experts it holds (moe.ts).
 *
 * BF16 (checkpoints without quantization_config): the same layout with 2 codes per u32 word and no scales:
 *   codes:  row r occupies words [r * rowStrideWords, r * rowStrideWords + ceil(cols / 2)), code j of the row
 *           in half (j % 2) of word (j / 2) (low half first), padding halves / words 0 (= +0.0).
 *           rowStrideWords = roundUp(ceil(cols / 2), 4)   (bf16RowStrideWords; 16-byte rows, as FP8). This
 *           always covers 2 · ceil(cols / 4) words, so the BF16 kernels read whole 4-column groups (two
 *           words) exactly where the FP8 kernels read one word.
 *   Stacks (bf16StackLayout / stackLayout('bf16', ...)): matrix m at word m * matrixWords, matrixScales = 0,
 *   scaleBytes = 0. Kernels: the *_bf16 instances of the expert kernel families and of the dense GEMV family
 *   (fp8_gemv_wide_bf16), and the attention absorb twins.
 *
 * INT4 (routed experts of Kimi K2-Thinking / K2.5, compressed-tensors pack-quantized, docs/model.md §13):
 *   codes:  the stored I32 words unchanged, 8 codes per word (column j in bits 4 (j mod 8) .. of word j / 8,
 *           u = q + 8), row r at word r * rowStrideWords, padding words 0;
 *           rowStrideWords = roundUp(ceil(cols / 8), 4)   (int4RowStrideWords).
 *   scales: the stored group scales widened to f32 (exact), [rows, ceil(cols / 32)] per matrix: one scale per row
 *           and 32 columns (the kernels take group 32, the size Kimi ships; INT4_GROUP).
 *   Stacks (int4StackLayout / stackLayout('int4', ...)): as FP8's, matrixScales = rows * ceil(cols / 32).
 *   Kernels: the *_int4 instances of the expert kernel families, and fp8_gemv_wide_int4 for a dense linear stored
 *   INT4 (one matrix of this layout, GpuLinear 'int4', ops/linear.ts).
 */
import { DeviceError, ShapeError } from '../../errors.js';

/** An FP8 weight as stored (compatible with model/checkpoint LinearWeight 'fp8' and format/fp8 Fp8Block). */
export interface Fp8Matrix {
  rows: number; // out
  cols: number; // in
  data: Uint8Array; // [rows, cols] E4M3FN codes
  scale: Float32Array; // [ceil(rows/128), ceil(cols/128)]
}

export const FP8_BLOCK = 128;
/** Rows start on 16-byte boundaries (vec4<u32> loads are possible). */
export const FP8_ROW_ALIGN_WORDS = 4;

export function fp8RowStrideWords(cols: number): number {
  return Math.ceil(Math.ceil(cols / 4) / FP8_ROW_ALIGN_WORDS) * FP8_ROW_ALIGN_WORDS;
}

/** How a linear weight is stored on the GPU: E4M3 codes + block scales, or BF16 codes. */
export type WeightFormat = 'fp8' | 'bf16';

/** u32 words per row of a BF16 matrix: 2 codes per word, rows padded to 16 bytes. */
export function bf16RowStrideWords(cols: number): number {
  return Math.ceil(Math.ceil(cols / 2) / FP8_ROW_ALIGN_WORDS) * FP8_ROW_ALIGN_WORDS;
}

/** The formats an expert stack may have on the GPU (dense linears: WeightFormat). */
export type ExpertFormat = WeightFormat | 'int4';

/** Columns per INT4 scale group the kernels take (docs/model.md §13: Kimi's group_size). */
export const INT4_GROUP = 32;

/** u32 words per row of an INT4 matrix: 8 codes per word, rows padded to 16 bytes. */
export function int4RowStrideWords(cols: number): number {
  return Math.ceil(Math.ceil(cols / 8) / FP8_ROW_ALIGN_WORDS) * FP8_ROW_ALIGN_WORDS;
}

/** Scale columns per scale row as the expert kernels index them: FP8 ⌈cols/128⌉, INT4 ⌈cols/32⌉, BF16 0. */
export function scaleColumns(format: ExpertFormat, cols: number): number {
  return format === 'fp8' ? Math.ceil(cols / FP8_BLOCK) : format === 'int4' ? Math.ceil(cols / INT4_GROUP) : 0;
}

/** u32 words per row of an expert stack in `format`. */
export function expertRowStrideWords(format: ExpertFormat, cols: number): number {
  return format === 'int4' ? int4RowStrideWords(cols) : rowStrideWordsFor(format, cols);
}

/** u32 words per row in the upload layout of `format`. */
export function rowStrideWordsFor(format: WeightFormat, cols: number): number {
  return format === 'fp8' ? fp8RowStrideWords(cols) : bf16RowStrideWords(cols);
}

/**
 * The formats a dense linear (GpuLinear, ops/linear.ts) may have on the GPU: FP8, BF16, or INT4 (any linear a
 * checkpoint stores pack-quantized, group 32: one matrix in int4StackLayout's layout).
 */
export type LinearFormat = WeightFormat | 'int4';

/** u32 words per row of a dense linear in `format` (the rows of an expert stack of that format). */
export function linearRowStrideWords(format: LinearFormat, cols: number): number {
  return expertRowStrideWords(format, cols);
}

/** [ceil(rows/128), ceil(cols/128)] */
export function scaleGrid(rows: number, cols: number): [number, number] {
  return [Math.ceil(rows / FP8_BLOCK), Math.ceil(cols / FP8_BLOCK)];
}

function checkMatrix(m: Fp8Matrix, what: string): void {
  const [sr, sc] = scaleGrid(m.rows, m.cols);
  if (m.data.length !== m.rows * m.cols) {
    throw new ShapeError(`${what}: ${m.data.length} FP8 codes do not make a [${m.rows}, ${m.cols}] matrix`, what, m.rows * m.cols, m.data.length);
  }
  if (m.scale.length !== sr * sc) {
    throw new ShapeError(`${what}: scale has ${m.scale.length} values, a [${m.rows}, ${m.cols}] weight needs [${sr}, ${sc}]`, what, [sr, sc], m.scale.length);
  }
}

/**
 * The codes of one matrix in the padded-row layout. Returns the input bytes themselves (no copy) when the
 * rows are already aligned (cols % 16 == 0).
 */
export function packFp8Rows(m: Fp8Matrix, what = 'fp8 weight'): { bytes: Uint8Array; rowStrideWords: number } {
  checkMatrix(m, what);
  const rowStrideWords = fp8RowStrideWords(m.cols);
  const strideBytes = rowStrideWords * 4;
  if (strideBytes === m.cols) return { bytes: m.data, rowStrideWords };
  const bytes = new Uint8Array(m.rows * strideBytes);
  for (let r = 0; r < m.rows; r++) bytes.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), r * strideBytes);
  return { bytes, rowStrideWords };
}

/** Geometry of `count` same-shape FP8 matrices packed in one buffer. */
export interface Fp8StackLayout {
  count: number;
  rows: number;
  cols: number;
  rowStrideWords: number;
  /** u32 words per matrix = rows * rowStrideWords */
  matrixWords: number;
  /** f32 scales per matrix = ceil(rows/128) * ceil(cols/128) */
  matrixScales: number;
  /** total bytes of the codes buffer / scales buffer */
  codeBytes: number;
  scaleBytes: number;
}

export function fp8StackLayout(count: number, rows: number, cols: number): Fp8StackLayout {
  const rowStrideWords = fp8RowStrideWords(cols);
  const [sr, sc] = scaleGrid(rows, cols);
  const matrixWords = rows * rowStrideWords;
  return {
    count,
    rows,
    cols,
    rowStrideWords,
    matrixWords,
    matrixScales: sr * sc,
    codeBytes: count * matrixWords * 4,
    scaleBytes: count * sr * sc * 4,
  };
}

/** Geometry of `count` same-shape BF16 matrices packed in one buffer (no scales: matrixScales = scaleBytes = 0). */
export function bf16StackLayout(count: number, rows: number, cols: number): Fp8StackLayout {
  const rowStrideWords = bf16RowStrideWords(cols);
  const matrixWords = rows * rowStrideWords;
  return { count, rows, cols, rowStrideWords, matrixWords, matrixScales: 0, codeBytes: count * matrixWords * 4, scaleBytes: 0 };
}

/** Geometry of `count` same-shape INT4 matrices in one buffer (scales: one f32 per row and 32 columns). */
export function int4StackLayout(count: number, rows: number, cols: number): Fp8StackLayout {
  const rowStrideWords = int4RowStrideWords(cols);
  const matrixWords = rows * rowStrideWords;
  const matrixScales = rows * Math.ceil(cols / INT4_GROUP);
  return { count, rows, cols, rowStrideWords, matrixWords, matrixScales, codeBytes: count * matrixWords * 4, scaleBytes: count * matrixScales * 4 };
}

/** The stack layout of `format` (fp8StackLayout, bf16StackLayout or int4StackLayout). */
export function stackLayout(format: ExpertFormat, count: number, rows: number, cols: number): Fp8StackLayout {
  return format === 'fp8' ? fp8StackLayout(count, rows, cols) : format === 'int4' ? int4StackLayout(count, rows, cols) : bf16StackLayout(count, rows, cols);
}

/** An INT4 weight as stored (compatible with model/checkpoint Int4Weight with groupSize 32). */
export interface Int4Matrix {
  rows: number; // out
  cols: number; // in
  data: Uint32Array; // [rows, ceil(cols/8)] packed words
  scale: Float32Array; // [rows, ceil(cols/32)]
}

/** Packs INT4 matrices into one stack in memory (tests and small models; the engine writes per matrix). */
export function packInt4Stack(mats: readonly Int4Matrix[], what = 'int4 stack'): { codes: Uint8Array; scales: Float32Array; layout: Fp8StackLayout } {
  if (mats.length === 0) throw new ShapeError(`${what}: no matrices`);
  const { rows, cols } = mats[0]!;
  const layout = int4StackLayout(mats.length, rows, cols);
  const words = new Uint32Array(layout.codeBytes / 4);
  const scales = new Float32Array(layout.count * layout.matrixScales);
  const wpr = Math.ceil(cols / 8);
  mats.forEach((m, i) => {
    if (m.rows !== rows || m.cols !== cols || m.data.length !== rows * wpr || m.scale.length !== layout.matrixScales) {
      throw new ShapeError(`${what}: matrix ${i} is not an INT4 [${rows}, ${cols}] with [${rows}, ${wpr}] words and [${rows}, ${Math.ceil(cols / INT4_GROUP)}] scales`, what);
    }
    for (let r = 0; r < rows; r++) words.set(m.data.subarray(r * wpr, (r + 1) * wpr), i * layout.matrixWords + r * layout.rowStrideWords);
    scales.set(m.scale, i * layout.matrixScales);
  });
  return { codes: new Uint8Array(words.buffer), scales, layout };
}

/** A BF16 weight as stored (compatible with model/checkpoint LinearWeight 'bf16'). */
export interface Bf16Matrix {
  rows: number; // out
  cols: number; // in
  data: Uint16Array; // [rows, cols] BF16 bits
}

/** The codes of one BF16 matrix in the padded-row layout (the input bytes themselves when cols % 8 == 0). */
export function packBf16Rows(m: Bf16Matrix, what = 'bf16 weight'): { bytes: Uint8Array; rowStrideWords: number } {
  if (m.data.length !== m.rows * m.cols) {
    throw new ShapeError(`${what}: ${m.data.length} BF16 codes do not make a [${m.rows}, ${m.cols}] matrix`, what, m.rows * m.cols, m.data.length);
  }
  const rowStrideWords = bf16RowStrideWords(m.cols);
  const strideBytes = rowStrideWords * 4;
  const src = new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength);
  const rowBytes = m.cols * 2;
  if (strideBytes === rowBytes) return { bytes: src, rowStrideWords };
  const bytes = new Uint8Array(m.rows * strideBytes);
  for (let r = 0; r < m.rows; r++) bytes.set(src.subarray(r * rowBytes, (r + 1) * rowBytes), r * strideBytes);
  return { bytes, rowStrideWords };
}

/** Packs BF16 matrices into one stack in memory (tests and small models; the engine writes per matrix). */
export function packBf16Stack(mats: readonly Bf16Matrix[], what = 'bf16 stack'): { codes: Uint8Array; layout: Fp8StackLayout } {
  if (mats.length === 0) throw new ShapeError(`${what}: no matrices`);
  const { rows, cols } = mats[0]!;
  const layout = bf16StackLayout(mats.length, rows, cols);
  const codes = new Uint8Array(layout.codeBytes);
  mats.forEach((m, i) => {
    if (m.rows !== rows || m.cols !== cols) {
      throw new ShapeError(`${what}: matrix ${i} is [${m.rows}, ${m.cols}], the stack is [${rows}, ${cols}]`, what, [rows, cols], [m.rows, m.cols]);
    }
    codes.set(packBf16Rows(m, `${what}[${i}]`).bytes, i * layout.matrixWords * 4);
  });
  return { codes, layout };
}

/**
 * Packs matrices into one stack in memory (tests and small models; the engine should write per matrix at
 * offsets instead, see the file header).
 */
export function packFp8Stack(mats: readonly Fp8Matrix[], what = 'fp8 stack'): { codes: Uint8Array; scales: Float32Array; layout: Fp8StackLayout } {
  if (mats.length === 0) throw new ShapeError(`${what}: no matrices`);
  const { rows, cols } = mats[0]!;
  const layout = fp8StackLayout(mats.length, rows, cols);
  const codes = new Uint8Array(layout.codeBytes);
  const scales = new Float32Array(layout.count * layout.matrixScales);
  mats.forEach((m, i) => {
    if (m.rows !== rows || m.cols !== cols) {
      throw new ShapeError(`${what}: matrix ${i} is [${m.rows}, ${m.cols}], the stack is [${rows}, ${cols}]`, what, [rows, cols], [m.rows, m.cols]);
    }
    codes.set(packFp8Rows(m, `${what}[${i}]`).bytes, i * layout.matrixWords * 4);
    scales.set(m.scale, i * layout.matrixScales);
  });
  return { codes, scales, layout };
}

/** A contiguous range of experts held by one buffer pair. */
export interface ExpertRange {
  first: number;
  count: number;
}

/**
 * Splits `experts` experts into shards whose codes fit `maxBindingBytes` (maxStorageBufferBindingSize);
 * `bytesPerExpert` = matricesPerExpert * matrixWords * 4. Throws a DeviceError naming `tensor` when a single
 * expert does not fit.
 */
export function expertShards(experts: number, bytesPerExpert: number, maxBindingBytes: number, tensor = 'experts'): ExpertRange[] {
  const per = Math.floor(maxBindingBytes / bytesPerExpert);
  if (per < 1) {
    throw new DeviceError(`${tensor}: one expert needs ${bytesPerExpert} bytes, more than maxStorageBufferBindingSize ${maxBindingBytes}`, {
      limit: 'maxStorageBufferBindingSize',
      value: maxBindingBytes,
      required: bytesPerExpert,
    });
  }
  const out: ExpertRange[] = [];
  for (let first = 0; first < experts; first += per) out.push({ first, count: Math.min(per, experts - first) });
  return out;
}
