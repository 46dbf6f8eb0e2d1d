/**
 * Small pieces shared by the benchmark cases: wrapping the engine's launchers (which record into a pass with a
 * uniform arena) as repeatable ops, chaining ops, and checking that a kernel exists on this device.
 * Browser-safe.
 */
import { UniformArena } from '../src/gpu/buffers.js';
import type { GpuContext } from '../src/gpu/device.js';
import type { Kernels } from '../src/gpu/kernels.js';
import type { EncodedOp } from './naive.js';

export interface CaseContext {
  gpu: GpuContext;
  kernels: Kernels;
}

export interface BenchVariant {
  variant: 'naive' | 'optimised';
  impl: string;
  /** Builds the op (may throw: the variant is then listed as skipped with the message). */
  build(): EncodedOp;
  /** The variant the engine uses on this device by default. */
  engineDefault?: boolean;
  /** Compulsory bytes of this variant when they differ from the shape's (another weight format). */
  bytes?: number;
  /** The weight format it reads (its row gets the fraction of that format's decode ceiling). */
  format?: 'fp8' | 'int4';
}

/**
 * Wraps a launcher that records into a pass with a uniform arena (src/gpu/ops/*). The arena is reset before
 * each submission is encoded and flushed before it is submitted, so `inner` repeated calls fit one arena.
 */
export function arenaOp(gpu: GpuContext, dispatches: number, record: (pass: GPUComputePassEncoder, arena: UniformArena) => void): EncodedOp {
  const arena = new UniformArena(gpu, 1 << 20, 'bench arena');
  return {
    dispatches,
    prepare: () => arena.reset(),
    encode: (pass) => record(pass, arena),
    finish: () => arena.flush(),
  };
}

/** Ops recorded one after the other as one call. */
export function chain(...ops: EncodedOp[]): EncodedOp {
  return {
    dispatches: ops.reduce((n, o) => n + o.dispatches, 0),
    prepare: () => ops.forEach((o) => o.prepare?.()),
    encode: (pass) => ops.forEach((o) => o.encode(pass)),
    finish: () => ops.forEach((o) => o.finish?.()),
  };
}

/** Throws unless each kernel's WGSL exists and runs on this device (the engineers land kernels over time). */
export function requireKernels(ctx: CaseContext, ...names: string[]): void {
  for (const n of names) {
    if (!ctx.kernels.available(n)) throw new Error(`kernel '${n}' is not available here (no shaders/${n}.wgsl yet, or it needs a feature this device lacks)`);
  }
}

/**
 * The pipeline labels (kernel names) an op records, found by encoding it into a stand-in pass that only
 * listens: used to tell which variant a launcher picks by default on this device without re-implementing its rule.
 */
export function pipelinesOf(record: (pass: GPUComputePassEncoder) => void): string[] {
  const labels: string[] = [];
  const listener = {
    setPipeline: (p: GPUComputePipeline) => labels.push(p.label),
    setBindGroup: () => {},
    dispatchWorkgroups: () => {},
    dispatchWorkgroupsIndirect: () => {},
  };
  record(listener as unknown as GPUComputePassEncoder); // only the four methods above are called by launchers
  return labels;
}
