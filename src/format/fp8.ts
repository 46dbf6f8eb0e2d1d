/**
 * Number formats of the checkpoints (docs/model.md §3): FP8 E4M3FN, BF16, and block-wise (128x128) FP8 (de)quantisation.
 *   E4M3FN: s eeee mmm, bias 7, subnormals at e == 0, NaN only at 0x7F / 0xFF, no infinities, max 448.
 *   BF16:   the top 16 bits of an f32.
 * Encoders round to nearest, ties to even (RNE). The FP8 encoder saturates at ±448, as the reference quantisers
 * do by clamping before the cast (docs/model.md §3.4); BF16 rounds like torch's f32 -> bf16 cast (overflow gives ±inf).
 */
import { InputError, ShapeError } from '../errors.js';

/** All 256 E4M3FN codes as f32 (exact: every E4M3 value is representable in f32). */
export const E4M3_TABLE: Float32Array = (() => {
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) t[b] = decodeE4M3(b);
  return t;
})();

/** Largest finite E4M3FN value (code 0x7E). */
export const E4M3_MAX = 448;

export function decodeE4M3(b: number): number {
  const s = b >> 7 ? -1 : 1;
  const e = (b >> 3) & 15;
  const m = b & 7;
  if (e === 15 && m === 7) return NaN;
  if (e === 0) return s * (m / 8) * 2 ** -6;
  return s * (1 + m / 8) * 2 ** (e - 7);
}

/** Round half to even, for a non-negative number. */
function rne(q: number): number {
  const f = Math.floor(q);
  const d = q - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Encodes one number as E4M3FN with a single RNE rounding (exact for any f64 input, not only f32 values).
 * |x| >= 448 (and ±inf) saturate to ±448; NaN gives 0x7F (0xFF with the sign bit); -0 gives 0x80.
 */
export function encodeE4M3(x: number): number {
  if (Number.isNaN(x)) return 0x7f;
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  const a = Math.abs(x);
  if (a >= E4M3_MAX) return sign | 0x7e;
  if (a < 2 ** -6) {
    // subnormal: m * 2^-9, m = 0..7; m == 8 rounds up into the smallest normal, whose code is also 8 (0x08)
    return sign | rne(a * 512);
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--; // log2 can be off by one next to powers of two
  else if (2 ** (e + 1) <= a) e++;
  let m = rne((a / 2 ** e - 1) * 8); // exact: division by a power of two, then * 8
  if (m === 8) {
    m = 0;
    e++;
  }
  const code = ((e + 7) << 3) | m;
  return sign | Math.min(code, 0x7e);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** |x| >= 2^-6 (smallest normal E4M3) as f32 bits, and |x| >= 448. */
const E4M3_NORMAL_BITS = 0x3c800000;
const E4M3_SAT_BITS = 0x43e00000;

/**
 * Normal-range codes by the top 12 bits of |x| (8 exponent + 4 mantissa bits, the 4th being the rounding bit),
 * rounding half up; `encodeE4M3Bits` turns exact ties back to even. Built from the exact scalar encoder.
 */
const NORMAL_CODES: Uint8Array = (() => {
  const t = new Uint8Array((E4M3_SAT_BITS >>> 19) + 1);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = E4M3_NORMAL_BITS >>> 19; i < t.length; i++) {
    u[0] = (i << 19) | 1; // sticky bit set: never a tie, so RNE rounds up exactly when the rounding bit is set
    t[i] = encodeE4M3(f[0]!);
  }
  return t;
})();

/** E4M3FN code of an f32 given by its bit pattern (the fast path of the quantiser). */
function encodeE4M3Bits(bits: number): number {
  const sign = (bits >>> 24) & 0x80;
  const abs = bits & 0x7fffffff;
  if (abs >= E4M3_NORMAL_BITS && abs < E4M3_SAT_BITS) {
    const code = NORMAL_CODES[abs >>> 19]!;
    // an exact tie (the 20 dropped mantissa bits are 1000...0) rounded up to an odd code goes back down to even
    return sign | ((abs & 0xfffff) === 0x80000 && code & 1 ? code - 1 : code);
  }
  if (abs > 0x7f800000) return 0x7f | sign; // NaN
  if (abs >= E4M3_SAT_BITS) return 0x7e | sign; // >= 448 (and inf): saturate
  // below 2^-6: subnormal E4M3 (or zero); |x| * 512 is exact in f64
  u32Scratch[0] = abs;
  return sign | rne(f32Scratch[0]! * 512);
}

/** Encodes an f32 array as E4M3FN codes (RNE, saturating). `out` may be given to avoid an allocation. */
export function encodeE4M3Array(src: Float32Array, out: Uint8Array = new Uint8Array(src.length)): Uint8Array {
  if (out.length < src.length) throw new ShapeError(`output has ${out.length} bytes, need ${src.length}`);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = encodeE4M3Bits(bits[i]!);
  return out;
}

export function bf16ToF32(u: number): number {
  const buf = new DataView(new ArrayBuffer(4));
  buf.setUint32(0, (u & 0xffff) << 16);
  return buf.getFloat32(0);
}

/** Widens a BF16 array exactly. */
export function bf16ArrayToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}

/** BF16 bits of an f32 bit pattern, RNE; NaN stays a (quiet) NaN with its sign. */
function bf16Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) & 0x8000) | 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * BF16 encoding of a number, RNE. The number is first rounded to f32 (as when torch casts an f32 tensor);
 * values past the bf16 range round to ±inf, NaN stays NaN.
 */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  return bf16Bits(u32Scratch[0]!);
}

/** Encodes an f32 array as BF16 (RNE). */
export function f32ArrayToBf16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (out.length < src.length) throw new ShapeError(`output has ${out.length} elements, need ${src.length}`);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = bf16Bits(bits[i]!);
  return out;
}

/** FP8 codes with their block scales: W[i, j] ≈ e4m3(data[i*cols + j]) * scale[i/128, j/128]. */
export interface Fp8Block {
  rows: number;
  cols: number;
  /** [rows, cols] E4M3FN codes. */
  data: Uint8Array;
  /** [ceil(rows/128), ceil(cols/128)] f32 `weight_scale_inv` (a multiplier). */
  scale: Float32Array;
}

/**
 * Block quantisation of a [rows, cols] f32 weight (docs/model.md §3.4): per 128x128 tile (partial tiles at the ragged
 * edges use only their existing elements) s = amax / 448 in f32 (s = 1 for an all-zero tile), and
 * Q = e4m3_rne(clamp(W / s, -448, 448)). Blocks are independent, so quantising a 128-row stripe of a
 * larger matrix gives exactly that stripe of the whole matrix's result.
 */
export function quantizeFp8Block(w: Float32Array, rows: number, cols: number, block = 128): Fp8Block {
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 0 || cols < 0 || w.length !== rows * cols) {
    throw new ShapeError(`quantizeFp8Block: ${w.length} values do not make a [${rows}, ${cols}] matrix`, undefined, [rows, cols], w.length);
  }
  const sRows = Math.ceil(rows / block);
  const sCols = Math.ceil(cols / block);
  const scale = new Float32Array(sRows * sCols);
  const data = new Uint8Array(rows * cols);
  const tmp = new Float32Array(Math.min(block, cols || 1));
  const tmpBits = new Uint32Array(tmp.buffer);
  for (let bi = 0; bi < sRows; bi++) {
    const r0 = bi * block;
    const r1 = Math.min(r0 + block, rows);
    for (let bj = 0; bj < sCols; bj++) {
      const c0 = bj * block;
      const c1 = Math.min(c0 + block, cols);
      let amax = 0;
      let poison = 0; // stays 0 unless some value is NaN or ±inf (x * 0 is NaN for those)
      for (let i = r0; i < r1; i++) {
        const row = i * cols;
        for (let j = c0; j < c1; j++) {
          const v = w[row + j]!;
          poison += v * 0;
          const a = Math.abs(v); // not a ternary: a sign branch mispredicts on random data
          if (a > amax) amax = a;
        }
      }
      if (poison !== 0) {
        throw new InputError(`quantizeFp8Block: non-finite value in the block at rows ${r0}..${r1 - 1}, cols ${c0}..${c1 - 1}`);
      }
      let s = Math.fround(amax / E4M3_MAX);
      if (amax === 0) s = 1;
      else if (s === 0) s = 2 ** -149; // amax so small that amax/448 underflows f32: any positive scale keeps |W/s| <= 448
      scale[bi * sCols + bj] = s;
      const n = c1 - c0;
      for (let i = r0; i < r1; i++) {
        const row = i * cols;
        for (let j = 0; j < n; j++) {
          // W / s in f64 rounded once to f32 by the store (= f32 division); clamping before or after that
          // rounding is the same since ±448 are f32 values
          const q = w[row + c0 + j]! / s;
          tmp[j] = q > E4M3_MAX ? E4M3_MAX : q < -E4M3_MAX ? -E4M3_MAX : q;
        }
        for (let j = 0; j < n; j++) data[row + c0 + j] = encodeE4M3Bits(tmpBits[j]!);
      }
    }
  }
  return { rows, cols, data, scale };
}

/**
 * W[i, j] = e4m3(Q[i, j]) * S[floor(i / 128), floor(j / 128)] in f32 (one rounding), ragged last blocks included.
 * Q: [rows, cols] u8, S: [ceil(rows/128), ceil(cols/128)] f32.
 */
export function dequantizeFp8Block(q: Uint8Array, scale: Float32Array, rows: number, cols: number, block = 128): Float32Array {
  const sCols = Math.ceil(cols / block);
  if (q.length !== rows * cols || scale.length !== Math.ceil(rows / block) * sCols) {
    throw new ShapeError(
      `dequantizeFp8Block: ${q.length} codes and ${scale.length} scales do not fit a [${rows}, ${cols}] weight with [${Math.ceil(rows / block)}, ${sCols}] scales`,
    );
  }
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const sRow = Math.floor(i / block) * sCols;
    for (let j = 0; j < cols; j++) {
      out[i * cols + j] = Math.fround(E4M3_TABLE[q[i * cols + j]!]! * scale[sRow + Math.floor(j / block)]!);
    }
  }
  return out;
}
