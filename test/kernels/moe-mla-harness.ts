/**
 * Test plumbing for the MLA and MoE kernel tests: upload, record one pass through a launcher, submit, read back.
 * One submission per `runPass`, as the engine does per step.
 */
import { quantizeFp8Block, dequantizeFp8Block } from '../../src/format/fp8.js';
import { readBuffer, uploadBuffer, UniformArena, createBuffer } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { Kernels } from '../../src/gpu/kernels.js';
import type { Fp8Matrix } from '../../src/gpu/ops/fp8-layout.js';
import { expectClose, randInt, randn } from '../helpers/gpu.js';
import { ffn } from '../../src/model/reference.js';
import type { FfnWeights } from '../../src/model/cpu-weights.js';

export interface Harness {
  gpu: GpuContext;
  k: Kernels;
  arena: UniformArena;
}

const harnesses = new WeakMap<GpuContext, Harness>();
export function harness(gpu: GpuContext): Harness {
  let h = harnesses.get(gpu);
  if (!h) {
    h = { gpu, k: new Kernels(gpu), arena: new UniformArena(gpu, 1 << 16) };
    harnesses.set(gpu, h);
  }
  return h;
}

/** Records `record` into one compute pass, submits it, waits; fails on any validation error. */
export async function runPass(h: Harness, record: (pass: GPUComputePassEncoder) => void): Promise<void> {
  const { gpu, arena } = h;
  arena.reset();
  gpu.device.pushErrorScope('validation');
  const enc = gpu.device.createCommandEncoder({ label: 'test' });
  const pass = enc.beginComputePass({ label: 'test' });
  record(pass);
  pass.end();
  arena.flush();
  gpu.device.queue.submit([enc.finish()]);
  await gpu.device.queue.onSubmittedWorkDone();
  const err = await gpu.device.popErrorScope();
  if (err) throw new Error(`validation: ${err.message}`);
  gpu.check();
}

export function upload(gpu: GpuContext, data: ArrayBufferView, label = 'test'): GPUBuffer {
  return uploadBuffer(gpu, data, label);
}

export function zeros(gpu: GpuContext, bytes: number, label = 'test'): GPUBuffer {
  return createBuffer(gpu, bytes, label);
}

export async function readF32(gpu: GpuContext, buf: GPUBuffer, n: number): Promise<Float32Array> {
  return new Float32Array(await readBuffer(gpu, buf, 0, n * 4));
}

export async function readU32(gpu: GpuContext, buf: GPUBuffer, n: number): Promise<Uint32Array> {
  return new Uint32Array(await readBuffer(gpu, buf, 0, n * 4));
}

/** A random FP8 weight: N(0, std) quantised per 128x128 block (docs/model.md §3.4), and its exact dequantisation. */
export function randomFp8(rand: () => number, rows: number, cols: number, std = 0.05): { m: Fp8Matrix; w: Float32Array } {
  const q = quantizeFp8Block(randn(rand, rows * cols, std), rows, cols);
  return { m: q, w: dequantizeFp8Block(q.data, q.scale, rows, cols) };
}

export function toF64(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(a as ArrayLike<number>);
}

const measured: string[] = [];

/**
 * expectClose with atol = tol · max(1, max|want|), recording the measured error (printed by printMeasured)
 * so CI logs show how far inside its tolerance each kernel is.
 */
export function checkClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, label: string): number {
  let scale = 1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  const maxAbs = expectClose(got, want, { atol: tol * scale, label });
  measured.push(`${label}: max|Δ| ${maxAbs.toExponential(2)} = ${(maxAbs / scale).toExponential(2)} of max(1, max|ref|) (tolerance ${tol})`);
  return maxAbs;
}

export function printMeasured(title: string): void {
  if (measured.length) console.log(`${title}\n  ${measured.join('\n  ')}`);
  measured.length = 0;
}

/** The CPU side of an expert test: the layer's geometry and each expert's (widened) SwiGLU weights. */
export interface CpuExpertLayer {
  g: { hidden: number; topK: number };
  experts: Array<{ w: FfnWeights }>;
  shared: { w: FfnWeights } | null;
}

/** out = residual + Σ_k w_k FFN_{ids_k}(x) + FFN_shared(x), in f64 on the widened weights. */
export function cpuExperts(l: CpuExpertLayer, x: Float32Array, ids: Uint32Array, wts: Float32Array, residual: Float32Array): Float64Array {
  const { hidden: D, topK: K } = l.g;
  const T = x.length / D;
  const out = toF64(residual);
  for (let t = 0; t < T; t++) {
    const xt = toF64(x.subarray(t * D, (t + 1) * D));
    const parts: Array<[number, FfnWeights]> = [];
    for (let k = 0; k < K; k++) parts.push([wts[t * K + k]!, l.experts[ids[t * K + k]!]!.w]);
    if (l.shared) parts.push([1, l.shared.w]);
    for (const [w, f] of parts) {
      const y = ffn(xt, f);
      for (let i = 0; i < D; i++) out[t * D + i]! += w * y[i]!;
    }
  }
  return out;
}

/** K distinct experts per token; `hot` gets picked by most tokens (several BM-row blocks for one expert). */
export function randomRoutes(rand: () => number, T: number, E: number, K: number, hot = -1): { ids: Uint32Array; wts: Float32Array } {
  const ids = new Uint32Array(T * K);
  const wts = new Float32Array(T * K);
  for (let t = 0; t < T; t++) {
    const pool = Array.from({ length: E }, (_, e) => e);
    for (let k = 0; k < K; k++) {
      let pick = randInt(rand, 0, pool.length - 1);
      if (k === 0 && hot >= 0 && rand() < 0.8) pick = pool.indexOf(hot);
      ids[t * K + k] = pool.splice(pick, 1)[0]!;
      wts[t * K + k] = 0.2 + rand();
    }
  }
  return { ids, wts };
}
