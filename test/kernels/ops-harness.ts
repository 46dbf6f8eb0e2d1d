/**
 * Runs launchers of src/gpu/ops in one submission and reads buffers back: the scaffolding of the dense-kernel
 * tests (one command encoder, one compute pass, a uniform arena, a validation error scope).
 */
import { createBuffer, readBuffer, UniformArena, writeBuffer } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { Kernels } from '../../src/gpu/kernels.js';

export interface Rec {
  k: Kernels;
  pass: GPUComputePassEncoder;
  arena: UniformArena;
}

const kernelsOf = new WeakMap<GpuContext, Kernels>();
export function kernels(gpu: GpuContext): Kernels {
  let k = kernelsOf.get(gpu);
  if (!k) {
    k = new Kernels(gpu);
    kernelsOf.set(gpu, k);
  }
  return k;
}

/** Records `body` into one pass, submits, waits; throws the first validation error. */
export async function record(gpu: GpuContext, body: (r: Rec) => void): Promise<void> {
  const k = kernels(gpu);
  const arena = new UniformArena(gpu, 1 << 16);
  gpu.device.pushErrorScope('validation');
  const enc = gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  body({ k, pass, arena });
  pass.end();
  arena.flush();
  gpu.device.queue.submit([enc.finish()]);
  await gpu.device.queue.onSubmittedWorkDone();
  const err = await gpu.device.popErrorScope();
  arena.buffer.destroy();
  if (err) throw new Error(`validation: ${err.message}`);
  gpu.check();
}

export function f32Buffer(gpu: GpuContext, data: Float32Array | number, label = 'f32'): GPUBuffer {
  const n = typeof data === 'number' ? data : data.length;
  const b = createBuffer(gpu, Math.max(4, n * 4), label);
  if (typeof data !== 'number') writeBuffer(gpu, b, 0, data);
  return b;
}

export function u32Buffer(gpu: GpuContext, data: Uint32Array, label = 'u32'): GPUBuffer {
  const b = createBuffer(gpu, Math.max(4, data.length * 4), label);
  writeBuffer(gpu, b, 0, data);
  return b;
}

export async function readF32(gpu: GpuContext, b: GPUBuffer, n: number, offset = 0): Promise<Float32Array> {
  return new Float32Array(await readBuffer(gpu, b, offset * 4, n * 4));
}

export async function readU32(gpu: GpuContext, b: GPUBuffer, n: number): Promise<Uint32Array> {
  return new Uint32Array(await readBuffer(gpu, b, 0, n * 4));
}
