/**
 * RoPE with YaRN frequency correction (docs/model.md §5), interleaved pairs (2i, 2i+1) with frequency index i.
 * The GPU engine uploads the same cos/sin tables (docs/model.md §5.6: WGSL sin/cos are too coarse), so this file is
 * the single definition of the rotation angles.
 *
 * Legend: T tokens, Dr qk_rope_head_dim, P = Dr / 2 rotation pairs, L0 original_max_position_embeddings.
 */
import type { ModelConfig } from './config.js';

export type RopeConfig = Pick<ModelConfig, 'qk_rope_head_dim' | 'rope_theta' | 'rope_scaling'>;

/** YaRN corr_dim(r) = Dr·ln(L0 / (2πr)) / (2·ln θ): the (fractional) pair index whose wavelength is L0/r. */
export function yarnCorrectionDim(r: number, dim: number, theta: number, originalMax: number): number {
  return (dim * Math.log(originalMax / (2 * Math.PI * r))) / (2 * Math.log(theta));
}

/** [low, high] of the YaRN ramp (docs/model.md §5.2): floor/ceil of the correction dims, clamped to [0, Dr − 1]. */
export function yarnCorrectionRange(betaFast: number, betaSlow: number, dim: number, theta: number, originalMax: number): [number, number] {
  const low = Math.max(Math.floor(yarnCorrectionDim(betaFast, dim, theta, originalMax)), 0);
  const high = Math.min(Math.ceil(yarnCorrectionDim(betaSlow, dim, theta, originalMax)), dim - 1);
  return [low, low === high ? high + 0.001 : high];
}

/**
 * Inverse frequencies inv_f[i], i < Dr/2, rounded to f32 // [P]
 * f_i = θ^(−2i/Dr); with YaRN: inv_f_i = f_i/factor·ramp_i + f_i·(1 − ramp_i).
 * Computed in f64 and rounded once; the references compute in fp32 step by step, which differs by at most an
 * ulp of f32 (≈ 6e-8 relative), far below the oracle tolerance.
 */
export function ropeInvFreq(c: RopeConfig): Float32Array {
  const dim = c.qk_rope_head_dim;
  const out = new Float32Array(dim / 2);
  const rs = c.rope_scaling;
  const [low, high] = rs ? yarnCorrectionRange(rs.beta_fast, rs.beta_slow, dim, c.rope_theta, rs.original_max_position_embeddings) : [0, 1];
  for (let i = 0; i < dim / 2; i++) {
    const f = 1 / Math.pow(c.rope_theta, (2 * i) / dim);
    if (!rs) {
      out[i] = f;
      continue;
    }
    const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
    out[i] = (f / rs.factor) * ramp + f * (1 - ramp);
  }
  return out;
}

/** cos/sin of θ[t, i] = fp32(p_t · inv_f_i), each rounded to f32. */
export interface RopeTables {
  /** Dr / 2 */
  pairs: number;
  cos: Float32Array; // [T, P]
  sin: Float32Array; // [T, P]
}

/**
 * The rotation tables for the given absolute positions (docs/model.md §5.3, §5.6): the angle is one fp32 product
 * `Math.fround(p · inv_f)` (as both reference implementations form it), cos/sin in f64 then rounded to f32.
 */
export function ropeTables(c: RopeConfig, positions: ArrayLike<number>): RopeTables {
  const invFreq = ropeInvFreq(c);
  const pairs = invFreq.length;
  const cos = new Float32Array(positions.length * pairs);
  const sin = new Float32Array(positions.length * pairs);
  for (let t = 0; t < positions.length; t++) {
    for (let i = 0; i < pairs; i++) {
      const angle = Math.fround(positions[t]! * invFreq[i]!);
      cos[t * pairs + i] = Math.cos(angle);
      sin[t * pairs + i] = Math.sin(angle);
    }
  }
  return { pairs, cos, sin };
}

/**
 * Rotates the Dr values x[at .. at+Dr) in place with row `row` of the tables, interleaved pairs:
 *   y[2i] = x[2i]·cos − x[2i+1]·sin,   y[2i+1] = x[2i]·sin + x[2i+1]·cos
 */
export function applyRope(x: Float64Array, at: number, tables: RopeTables, row: number): void {
  const base = row * tables.pairs;
  for (let i = 0; i < tables.pairs; i++) {
    const c = tables.cos[base + i]!;
    const s = tables.sin[base + i]!;
    const a = x[at + 2 * i]!;
    const b = x[at + 2 * i + 1]!;
    x[at + 2 * i] = a * c - b * s;
    x[at + 2 * i + 1] = a * s + b * c;
  }
}
