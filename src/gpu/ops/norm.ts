/**
 * RMSNorm launcher (shaders/rmsnorm.wgsl, docs/model.md §4.2): y[t] = w ⊙ x[t] / sqrt(mean(x[t]²) + eps) for T rows
 * of width n, with element offsets and row strides on both sides (the engine normalises the first R columns of
 * kv_a's output straight into the latent cache).
 */
import { ShapeError } from '../../errors.js';
import type { UniformArena } from '../buffers.js';
import type { Kernels } from '../kernels.js';
import { requireBytes, requireInt, type Buf } from './binding.js';

export interface RmsNormArgs {
  /** [T, xStride] f32 at xOffset; never the same buffer as y */
  x: Buf;
  xOffset?: number;
  xStride?: number;
  /** [n] f32 */
  weight: Buf;
  /** [T, yStride] f32 at yOffset */
  y: Buf;
  yOffset?: number;
  yStride?: number;
  n: number;
  tokens: number;
  eps: number;
}

export function rmsNorm(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: RmsNormArgs): void {
  const name = 'rmsnorm';
  requireInt(a.n, 1, name, 'n');
  requireInt(a.tokens, 1, name, 'tokens');
  const xOffset = a.xOffset ?? 0;
  const yOffset = a.yOffset ?? 0;
  const xStride = a.xStride ?? a.n;
  const yStride = a.yStride ?? a.n;
  if (xStride < a.n || yStride < a.n) throw new ShapeError(`${name}: strides (${xStride}, ${yStride}) must be >= n ${a.n}`, 'stride', a.n, [xStride, yStride]);
  if (!(a.eps > 0)) throw new ShapeError(`${name}: eps must be > 0, got ${a.eps}`, 'eps');
  const xb = 'buffer' in a.x ? a.x.buffer : a.x;
  const yb = 'buffer' in a.y ? a.y.buffer : a.y;
  if (xb === yb) throw new ShapeError(`${name}: x and y must be different buffers (WebGPU forbids aliasing a writable binding)`, 'y');
  requireBytes(k.gpu, a.x, (xOffset + (a.tokens - 1) * xStride + a.n) * 4, name, 'x');
  requireBytes(k.gpu, a.weight, a.n * 4, name, 'weight');
  requireBytes(k.gpu, a.y, (yOffset + (a.tokens - 1) * yStride + a.n) * 4, name, 'y');
  k.run(pass, arena, name, {
    constants: { WG: 64 },
    bind: { src: a.x, weight: a.weight, dst: a.y },
    params: { n: a.n, inOffset: xOffset, inStride: xStride, outOffset: yOffset, outStride: yStride, eps: a.eps },
    grid: [a.tokens],
  });
}
