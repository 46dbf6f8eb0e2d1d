/**
 * Token selection on the GPU, so a decode step reads back 4 bytes: argmax (shaders/argmax.wgsl) for greedy
 * decoding and the full rule of src/engine/sampler.ts (temperature, top-k, top-p, CPU-drawn uniform) in
 * shaders/sample.wgsl. Both write a u32 token id into `out[outIndex]`.
 */
import { ShapeError } from '../../errors.js';
import type { UniformArena } from '../buffers.js';
import type { Kernels } from '../kernels.js';
import { requireBytes, requireInt, type Buf } from './binding.js';

export interface PickArgs {
  /** [V] f32 at logitsOffset */
  logits: Buf;
  logitsOffset?: number;
  vocab: number;
  /** u32 array; element outIndex receives the token id */
  out: Buf;
  outIndex?: number;
}

export function argmaxToken(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: PickArgs): void {
  const name = 'argmax';
  requireInt(a.vocab, 1, name, 'vocab');
  const lo = a.logitsOffset ?? 0;
  const oi = a.outIndex ?? 0;
  requireBytes(k.gpu, a.logits, (lo + a.vocab) * 4, name, 'logits');
  requireBytes(k.gpu, a.out, (oi + 1) * 4, name, 'out');
  k.run(pass, arena, name, { constants: { WG: 256 }, bind: { logits: a.logits, out: a.out }, params: { V: a.vocab, logitsOffset: lo, outIndex: oi }, grid: [1] });
}

export interface SampleArgs extends PickArgs {
  /** f32 scratch [V] */
  probs: Buf;
  temperature: number;
  topK: number;
  topP: number;
  uniform: number;
}

export function sampleToken(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: SampleArgs): void {
  const name = 'sample';
  requireInt(a.vocab, 1, name, 'vocab');
  requireInt(a.topK, 0, name, 'topK');
  if (!(a.uniform >= 0 && a.uniform < 1)) throw new ShapeError(`${name}: uniform must be in [0, 1), got ${a.uniform}`, 'uniform');
  if (!Number.isFinite(a.temperature) || !Number.isFinite(a.topP)) throw new ShapeError(`${name}: temperature and topP must be finite`, 'temperature');
  const lo = a.logitsOffset ?? 0;
  const oi = a.outIndex ?? 0;
  requireBytes(k.gpu, a.logits, (lo + a.vocab) * 4, name, 'logits');
  requireBytes(k.gpu, a.probs, a.vocab * 4, name, 'probs');
  requireBytes(k.gpu, a.out, (oi + 1) * 4, name, 'out');
  k.run(pass, arena, name, {
    bind: { logits: a.logits, probs: a.probs, out: a.out },
    params: { V: a.vocab, logitsOffset: lo, outIndex: oi, topK: a.topK, temperature: a.temperature, topP: a.topP, uniform: a.uniform },
    grid: [1],
  });
}
