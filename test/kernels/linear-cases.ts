/**
 * Dense-linear test cases shared by the kernel tests (linear.gpu.test.ts, int4-dense.gpu.test.ts): a weight as a
 * checkpoint stores it with its dequantised values, and the f64 reference product with the bound it is checked
 * against.
 */
import { bf16ArrayToF32, f32ArrayToBf16 } from '../../src/format/fp8.js';
import type { LinearWeight } from '../../src/model/checkpoint.js';
import { randn } from '../helpers/gpu.js';

/** A weight as stored and its dequantised values [rows, cols]. */
export interface LinearCase {
  w: LinearWeight;
  dense: Float32Array;
}

/** A BF16 weight of N(0, 0.5²) values. */
export function bf16Case(rand: () => number, rows: number, cols: number): LinearCase {
  const data = f32ArrayToBf16(randn(rand, rows * cols, 0.5));
  return { w: { format: 'bf16', rows, cols, data }, dense: bf16ArrayToF32(data) };
}

/** y[t, r] = Σ_c W[r, c] x[t, c] in f64 (the reference's matVec on the dequantised weight), m[t, r] = Σ_c |W x|. */
export function linearReference(dense: Float32Array, rows: number, cols: number, x: Float32Array, T: number): { y: Float64Array; m: Float64Array } {
  const y = new Float64Array(T * rows);
  const m = new Float64Array(T * rows);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      let a = 0;
      for (let c = 0; c < cols; c++) {
        const p = dense[r * cols + c]! * x[t * cols + c]!;
        s += p;
        a += Math.abs(p);
      }
      y[t * rows + r] = s;
      m[t * rows + r] = a;
    }
  }
  return { y, m };
}
