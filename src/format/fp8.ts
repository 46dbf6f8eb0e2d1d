/**
 * Number formats of the checkpoints (spec §3): FP8 E4M3FN, BF16, and block-wise (128x128) FP8 dequantisation.
 *   E4M3FN: s eeee mmm, bias 7, subnormals at e == 0, NaN only at 0x7F / 0xFF, no infinities, max 448.
 */

/** All 256 E4M3FN codes as f32 (exact: every E4M3 value is representable in f32). */
export const E4M3_TABLE: Float32Array = (() => {
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) t[b] = decodeE4M3(b);
  return t;
})();

export function decodeE4M3(b: number): number {
  const s = b >> 7 ? -1 : 1;
  const e = (b >> 3) & 15;
  const m = b & 7;
  if (e === 15 && m === 7) return NaN;
  if (e === 0) return s * (m / 8) * 2 ** -6;
  return s * (1 + m / 8) * 2 ** (e - 7);
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

/**
 * W[i, j] = e4m3(Q[i, j]) * S[floor(i / 128), floor(j / 128)] in f32 (one rounding), ragged last blocks included.
 * Q: [rows, cols] u8, S: [ceil(rows/128), ceil(cols/128)] f32.
 */
export function dequantizeFp8Block(q: Uint8Array, scale: Float32Array, rows: number, cols: number, block = 128): Float32Array {
  const out = new Float32Array(rows * cols);
  const sCols = Math.ceil(cols / block);
  for (let i = 0; i < rows; i++) {
    const sRow = Math.floor(i / block) * sCols;
    for (let j = 0; j < cols; j++) {
      out[i * cols + j] = Math.fround(E4M3_TABLE[q[i * cols + j]!]! * scale[sRow + Math.floor(j / block)]!);
    }
  }
  return out;
}
