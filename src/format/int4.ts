/**
 * INT4 "pack-quantized" weights as compressed-tensors writes them (Kimi K2-Thinking / K2.5 routed experts, spec
 * §13): symmetric, one scale per row and group of G (32) input columns, 8 codes per int32 word.
 *   packed  I32 [rows, ⌈cols/8⌉]: element j of a row is bits 4·(j mod 8) .. 4·(j mod 8) + 3 of word j / 8 (the
 *           first element in the lowest nibble, words little-endian), stored unsigned u = q + 8, rows zero-padded
 *   scale   [rows, ⌈cols/G⌉] (BF16 as shipped)
 *   W[i, j] = (u[i, j] - 8) * scale[i, j / G]      exact in f32 (a 4-bit integer times a BF16 value)
 * Quantisation reproduces compressed-tensors bit for bit (all four rules of §13 matter): the weight is rounded to
 * BF16 first; per group amax = max(|min(w, 0)|, max(w, 0)), scale = bf16(amax / 7.5) clamped to >= the f32
 * epsilon; q = round_half_even(clamp(bf16(w / scale), -8, 7)); a row length that is not a multiple of G is refused.
 */
import { InputError, ShapeError } from '../errors.js';
import { f32ToBf16 } from './fp8.js';

/** Kimi's group size (quantization_config.config_groups.*.weights.group_size). */
export const INT4_GROUP_SIZE = 32;

/** The f32 machine epsilon (2^-23), compressed-tensors' lower bound for a scale. */
const F32_EPS = 2 ** -23;

export interface Int4Packed {
  rows: number;
  cols: number;
  groupSize: number;
  /** [rows, ⌈cols/8⌉] words, u = q + 8 per nibble (stored as safetensors I32; the bits are the same). */
  packed: Uint32Array;
  /** [rows, ⌈cols/G⌉] BF16 bit patterns of the scales. */
  scale: Uint16Array;
}

/** Words per packed row. */
export function int4RowWords(cols: number): number {
  return Math.ceil(cols / 8);
}

/**
 * W[i, j] = (u - 8) * scale[i, ⌊j/G⌋] as f32 [rows, cols]. `scale` holds the scales as f32 values (BF16 widened
 * exactly); packed words beyond `cols` in the last word of a row are ignored.
 */
export function dequantizeInt4(packed: Uint32Array | Int32Array, scale: Float32Array, rows: number, cols: number, groupSize = INT4_GROUP_SIZE): Float32Array {
  const pw = int4RowWords(cols);
  const sw = Math.ceil(cols / groupSize);
  if (packed.length !== rows * pw || scale.length !== rows * sw) {
    throw new ShapeError(`dequantizeInt4: ${packed.length} words and ${scale.length} scales do not fit a [${rows}, ${cols}] weight (need ${rows * pw} and ${rows * sw})`);
  }
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const pRow = i * pw;
    const sRow = i * sw;
    const oRow = i * cols;
    for (let j = 0; j < cols; j++) {
      const u = (packed[pRow + (j >> 3)]! >>> ((j & 7) << 2)) & 15;
      out[oRow + j] = (u - 8) * scale[sRow + Math.floor(j / groupSize)]!;
    }
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f32 value of BF16 bits. */
function bf16Value(bits: number): number {
  u32[0] = bits << 16;
  return f32[0]!;
}

/** Rounds the finite f32 values of `bits` to BF16 in place (RNE on the 16 dropped bits), as torch's cast does. */
function roundBf16InPlace(bits: Uint32Array, n: number): void {
  for (let j = 0; j < n; j++) {
    const b = bits[j]!;
    bits[j] = (((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16) >>> 0;
  }
}

/** IEEE half -> f32, exact (INT4 scales of an F16 model). */
export function f16ArrayToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i]!;
    const e = (h >> 10) & 31;
    const m = h & 1023;
    const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
    out[i] = h & 0x8000 ? -v : v;
  }
  return out;
}

/** Round half to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Quantises a [rows, cols] weight (f32 values, rounded to BF16 first) exactly as compressed-tensors'
 * pack-quantized writer (docs/model.md §13). `cols` must be a multiple of the group size.
 */
export function quantizeInt4(w: Float32Array, rows: number, cols: number, groupSize = INT4_GROUP_SIZE): Int4Packed {
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 0 || cols < 0 || w.length !== rows * cols) {
    throw new ShapeError(`quantizeInt4: ${w.length} values do not make a [${rows}, ${cols}] matrix`, undefined, [rows, cols], w.length);
  }
  if (cols % groupSize !== 0) throw new InputError(`quantizeInt4: ${cols} columns are not a multiple of the group size ${groupSize} (compressed-tensors refuses such rows)`, 'cols');
  const pw = int4RowWords(cols);
  const sw = cols / groupSize;
  const packed = new Uint32Array(rows * pw);
  const scale = new Uint16Array(rows * sw);
  // per group: the weights rounded to BF16 (wb), then the quotients rounded to BF16 (qb), all through bit views
  const wb = new Float32Array(groupSize);
  const wbBits = new Uint32Array(wb.buffer);
  const qb = new Float32Array(groupSize);
  const qbBits = new Uint32Array(qb.buffer);
  for (let i = 0; i < rows; i++) {
    for (let g = 0; g < sw; g++) {
      const c0 = g * groupSize;
      wb.set(w.subarray(i * cols + c0, i * cols + c0 + groupSize));
      let lo = 0;
      let hi = 0;
      for (let j = 0; j < groupSize; j++) {
        if ((wbBits[j]! & 0x7f800000) === 0x7f800000) throw new InputError(`quantizeInt4: non-finite value at row ${i}, column ${c0 + j}`);
      }
      roundBf16InPlace(wbBits, groupSize); // rule 1: BF16 first
      for (let j = 0; j < groupSize; j++) {
        const b = wb[j]!;
        if (b < lo) lo = b;
        if (b > hi) hi = b;
      }
      const amax = Math.max(-lo, hi);
      // rule 2: bf16 tensor / python float: torch divides in f32 and rounds the quotient to bf16; >= f32 epsilon
      let sBits = f32ToBf16(Math.fround(amax / 7.5));
      if (bf16Value(sBits) < F32_EPS) sBits = f32ToBf16(F32_EPS);
      scale[i * sw + g] = sBits;
      const s = bf16Value(sBits);
      for (let j = 0; j < groupSize; j++) qb[j] = wb[j]! / s; // the store rounds the quotient to f32
      roundBf16InPlace(qbBits, groupSize); // rule 3: the quotient rounded in BF16
      for (let j = 0; j < groupSize; j++) {
        const q = roundHalfEven(Math.min(7, Math.max(-8, qb[j]!)));
        const col = c0 + j;
        const k = i * pw + (col >> 3);
        packed[k] = packed[k]! | ((q + 8) << ((col & 7) << 2));
      }
    }
  }
  return { rows, cols, groupSize, packed, scale };
}
