/**
 * Elementwise launchers: the residual add (shaders/add.wgsl) and the SwiGLU gate (shaders/swiglu.wgsl). Both
 * run one thread per element on a 2-D grid, so n may exceed 65535 workgroups' worth of elements.
 */
import { ShapeError } from '../../errors.js';
import type { UniformArena } from '../buffers.js';
import type { Kernels } from '../kernels.js';
import { requireBytes, requireInt, type Buf } from './binding.js';

const MAX_X = 65535;

/** (x, y) workgroup counts covering `groups` workgroups on a 2-D grid. */
export function grid2d(groups: number): [number, number] {
  const x = Math.max(1, Math.min(groups, MAX_X));
  return [x, Math.max(1, Math.ceil(groups / x))];
}

function bufferOf(b: Buf): GPUBuffer {
  return 'buffer' in b ? b.buffer : b;
}

/** y[yOffset + i] += x[xOffset + i], i < n. */
export function addInPlace(
  k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena,
  a: { y: Buf; yOffset?: number; x: Buf; xOffset?: number; n: number },
): void {
  const name = 'add';
  requireInt(a.n, 1, name, 'n');
  const yOffset = a.yOffset ?? 0;
  const xOffset = a.xOffset ?? 0;
  if (bufferOf(a.x) === bufferOf(a.y)) throw new ShapeError(`${name}: x and y must be different buffers`, 'x');
  requireBytes(k.gpu, a.y, (yOffset + a.n) * 4, name, 'y');
  requireBytes(k.gpu, a.x, (xOffset + a.n) * 4, name, 'x');
  const WG = 256;
  const [gx, gy] = grid2d(Math.ceil(a.n / WG));
  k.run(pass, arena, name, { constants: { WG }, bind: { y: a.y, x: a.x }, params: { n: a.n, yOffset, xOffset }, grid: [gx, gy] });
}

/** out[outOffset + i] = silu(gate[gateOffset + i]) · up[upOffset + i], i < n (gate and up may share a buffer). */
export function swiglu(
  k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena,
  a: { gate: Buf; gateOffset?: number; up: Buf; upOffset?: number; out: Buf; outOffset?: number; n: number },
): void {
  const name = 'swiglu';
  requireInt(a.n, 1, name, 'n');
  const g = a.gateOffset ?? 0;
  const u = a.upOffset ?? 0;
  const o = a.outOffset ?? 0;
  const out = bufferOf(a.out);
  if (out === bufferOf(a.gate) || out === bufferOf(a.up)) throw new ShapeError(`${name}: out must be a buffer distinct from gate and up`, 'out');
  requireBytes(k.gpu, a.gate, (g + a.n) * 4, name, 'gate');
  requireBytes(k.gpu, a.up, (u + a.n) * 4, name, 'up');
  requireBytes(k.gpu, a.out, (o + a.n) * 4, name, 'out');
  const WG = 256;
  const [gx, gy] = grid2d(Math.ceil(a.n / WG));
  k.run(pass, arena, name, {
    constants: { WG },
    bind: { gate: a.gate, up: a.up, out: a.out },
    params: { n: a.n, gateOffset: g, upOffset: u, outOffset: o },
    grid: [gx, gy],
  });
}
