/**
 * Seeded synthetic data for the benchmarks (and the naive-twin tests): FP8 weights in the GPU layout of
 * src/gpu/ops/fp8-layout.ts, f32 / bf16 vectors. Timing does not depend on the values, but they are kept
 * realistic anyway (finite, no NaN codes, block scales ~1e-2) so that no path hits denormals or NaNs.
 * Browser-safe: no Node imports.
 */
import { createBuffer } from '../src/gpu/buffers.js';
import type { GpuContext } from '../src/gpu/device.js';
import { fp8StackLayout, int4StackLayout, type Fp8StackLayout } from '../src/gpu/ops/fp8-layout.js';
import { mulberry32 } from '../src/random.js';

/** mulberry32: small, fast, seeded. */
export const rng = mulberry32;

/** Uniform values in [-amp, amp). */
export function uniformF32(rand: () => number, n: number, amp = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * amp;
  return out;
}

/**
 * Random E4M3FN codes with |value| <= 1.875 (exponent field <= 7, so never the NaN codes 0x7F / 0xFF),
 * written straight into the padded-row layout. Fast enough for Kimi-K2-sized stacks (hundreds of MB):
 * one xorshift word gives four codes.
 */
export function fillFp8Codes(bytes: Uint8Array, seed: number): void {
  let s = (seed * 2654435761) >>> 0 || 1;
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = (s >>> 0) & 0xbfbfbfbf; // clear bit 6 of each code: exponent <= 7
  }
  for (let i = words.length * 4; i < bytes.length; i++) bytes[i] = i & 0x3f;
}

export interface GpuFp8Stack {
  codes: GPUBuffer;
  scales: GPUBuffer;
  layout: Fp8StackLayout;
}

/**
 * `count` random [rows, cols] FP8 matrices packed in one buffer pair (codes, scales), written a matrix at a
 * time so a large stack never needs a second full copy in JS memory. Row padding bytes stay random, which
 * kernels must ignore (they mask the ragged tail), so only use this for timing.
 */
export function randomFp8Stack(gpu: GpuContext, label: string, count: number, rows: number, cols: number, seed: number): GpuFp8Stack {
  const layout = fp8StackLayout(count, rows, cols);
  const codes = createBuffer(gpu, layout.codeBytes, `${label} codes`);
  const chunk = new Uint8Array(layout.matrixWords * 4);
  for (let m = 0; m < count; m++) {
    fillFp8Codes(chunk, seed + m);
    gpu.device.queue.writeBuffer(codes, m * chunk.byteLength, chunk);
  }
  const rand = rng(seed ^ 0x5bd1e995);
  const s = new Float32Array(count * layout.matrixScales);
  for (let i = 0; i < s.length; i++) s[i] = 0.005 + 0.01 * rand();
  const scales = createBuffer(gpu, s.byteLength, `${label} scales`);
  gpu.device.queue.writeBuffer(scales, 0, s);
  return { codes, scales, layout };
}

/**
 * A stack of `count` INT4 [rows, cols] matrices in the GPU layout (int4StackLayout): seeded random packed words
 * (every code 0..15) and f32 group scales in [0.005, 0.015).
 */
export function randomInt4Stack(gpu: GpuContext, label: string, count: number, rows: number, cols: number, seed: number): { codes: GPUBuffer; scales: GPUBuffer } {
  const layout = int4StackLayout(count, rows, cols);
  const codes = createBuffer(gpu, layout.codeBytes, `${label} codes`);
  const chunk = new Uint8Array(layout.matrixWords * 4);
  for (let m = 0; m < count; m++) {
    const rand = rng(seed + m);
    const words = new Uint32Array(chunk.buffer);
    for (let i = 0; i < words.length; i++) words[i] = (rand() * 0x100000000) >>> 0;
    gpu.device.queue.writeBuffer(codes, m * chunk.byteLength, chunk);
  }
  const rand = rng(seed ^ 0x5bd1e995);
  const s = new Float32Array(count * layout.matrixScales);
  for (let i = 0; i < s.length; i++) s[i] = 0.005 + 0.01 * rand();
  const scales = createBuffer(gpu, s.byteLength, `${label} scales`);
  gpu.device.queue.writeBuffer(scales, 0, s);
  return { codes, scales };
}

/** An f32 buffer of seeded uniform values in [-amp, amp). */
export function randomF32Buffer(gpu: GpuContext, label: string, n: number, seed: number, amp = 1): GPUBuffer {
  const data = uniformF32(rng(seed), n, amp);
  const buf = createBuffer(gpu, data.byteLength, label);
  gpu.device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
  return buf;
}

/** A zero-filled storage buffer of `bytes` bytes (written once so no lazy clear lands in a timed pass). */
export function zeroBuffer(gpu: GpuContext, label: string, bytes: number): GPUBuffer {
  const buf = createBuffer(gpu, bytes, label);
  gpu.device.queue.writeBuffer(buf, 0, new Uint8Array(Math.max(16, Math.ceil(bytes / 16) * 16)));
  return buf;
}

/** Random BF16 [n] packed 2 per u32, values in [-amp, amp). */
export function randomBf16Buffer(gpu: GpuContext, label: string, n: number, seed: number, amp = 0.05): GPUBuffer {
  const f = uniformF32(rng(seed), n + (n & 1), amp);
  const bits = new Uint32Array(f.buffer);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = bits[i]! >>> 16; // truncation: any bf16 is fine for timing
  const buf = createBuffer(gpu, out.byteLength, label);
  gpu.device.queue.writeBuffer(buf, 0, out);
  return buf;
}
