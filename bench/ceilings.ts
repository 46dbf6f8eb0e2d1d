/**
 * The two ceilings every kernel is compared with, measured in the same run on the same device:
 *   bandwidth_gbps  streaming read of one large buffer (shaders/bench_stream_read.wgsl), best of a few
 *                   access patterns and grid sizes; the kernel's sum is checked once, so no variant can cheat
 *                   by skipping loads. copyBufferToBuffer is NOT used: on CPU adapters it is a memcpy ~10x
 *                   faster than any shader can read (docs/webgpu-on-linux.md §5).
 *   fma_gflops      f32 FMA throughput (shaders/bench_fma.wgsl), best of a few grid shapes.
 * Browser-safe.
 */
import { createBuffer, readBuffer } from '../src/gpu/buffers.js';
import type { GpuContext } from '../src/gpu/device.js';
import type { Kernels } from '../src/gpu/kernels.js';
import { timeOp, type Timing, type TimingOptions } from './harness.js';
import type { EncodedOp } from './naive.js';
import '../src/gpu/shaders-extra.gen.js'; // the naive twins and bench kernels (shaders/reference, shaders/bench)

export interface CeilingVariant {
  variant: string;
  gbps?: number;
  gflops?: number;
  ms: number;
  method: string;
}

export interface Ceilings {
  bandwidth_gbps: number;
  fma_gflops: number;
  /**
   * FP8 weights decoded and multiply-added per second with no memory traffic (bench_fp8_decode.wgsl), in GB/s
   * at 1 byte per weight: the most an FP8 GEMV could reach on this device if its loads were free.
   */
  fp8_decode_gbps: number;
  /**
   * The same for packed INT4 (bench_int4_decode.wgsl, the wide INT4 expert kernels' decode), GB/s at half a byte
   * per weight.
   */
  int4_decode_gbps?: number;
  /** Fixed cost of one (near-empty, dependent) dispatch inside a pass, µs: what a toy-scale step pays per kernel. */
  dispatch_us: number;
  /** One submission of one tiny dispatch, submit to onSubmittedWorkDone, wall ms: the floor of any step. */
  submit_ms: number;
  bandwidth: { bytes: number; best: string; verified: boolean; method: string; variants: CeilingVariant[] };
  fma: { flop: number; best: string; method: string; variants: CeilingVariant[] };
  /** When measured twice in a run (before and after the kernels): both values. */
  drift?: { bandwidth_gbps: number[]; fma_gflops: number[] };
}

export interface CeilingOptions {
  /** Bytes streamed (capped by the device's binding and buffer limits). Default 128 MiB. */
  streamBytes?: number;
  /** Try every variant (else a short list). */
  full?: boolean;
  timing?: Partial<TimingOptions>;
  onProgress?: (what: string) => void;
}

const MiB = 1 << 20;

export async function measureCeilings(gpu: GpuContext, kernels: Kernels, opts: CeilingOptions = {}): Promise<Ceilings> {
  const bandwidth = await measureBandwidth(gpu, kernels, opts);
  const fma = await measureFma(gpu, kernels, opts);
  const fp8 = await measureDecode(gpu, kernels, opts, 'bench_fp8_decode', 16);
  const int4 = await measureDecode(gpu, kernels, opts, 'bench_int4_decode', 16);
  const fixed = await measureFixedCosts(gpu, kernels, opts);
  return {
    bandwidth_gbps: bandwidth.best.gbps!, fma_gflops: fma.best.gflops!, fp8_decode_gbps: fp8, int4_decode_gbps: int4, ...fixed,
    bandwidth: bandwidth.report, fma: fma.report,
  };
}

/**
 * Merges two measurements of the ceilings in one run (taken before and after the kernels, on a machine that
 * other work may share): each ceiling is the better of the two, since a ceiling is what the device can do;
 * `drift` keeps both so a noisy run is visible.
 */
export function mergeCeilings(a: Ceilings, b: Ceilings): Ceilings {
  return {
    bandwidth_gbps: Math.max(a.bandwidth_gbps, b.bandwidth_gbps),
    fma_gflops: Math.max(a.fma_gflops, b.fma_gflops),
    fp8_decode_gbps: Math.max(a.fp8_decode_gbps, b.fp8_decode_gbps),
    int4_decode_gbps: Math.max(a.int4_decode_gbps ?? 0, b.int4_decode_gbps ?? 0),
    dispatch_us: Math.min(a.dispatch_us, b.dispatch_us),
    submit_ms: Math.min(a.submit_ms, b.submit_ms),
    bandwidth: { ...(a.bandwidth_gbps >= b.bandwidth_gbps ? a.bandwidth : b.bandwidth), variants: [...a.bandwidth.variants, ...b.bandwidth.variants] },
    fma: { ...(a.fma_gflops >= b.fma_gflops ? a.fma : b.fma), variants: [...a.fma.variants, ...b.fma.variants] },
    drift: {
      bandwidth_gbps: [a.bandwidth_gbps, b.bandwidth_gbps],
      fma_gflops: [a.fma_gflops, b.fma_gflops],
    },
  };
}

/**
 * Decode + FMA throughput from registers of a bench_*_decode kernel, as GB/s of stored weights: bench_fp8_decode
 * (FP8, 16 bytes of codes per iteration and invocation) or bench_int4_decode (INT4, 16 bytes = 32 codes).
 */
async function measureDecode(gpu: GpuContext, kernels: Kernels, opts: CeilingOptions, kernel: string, bytesPerIter: number): Promise<number> {
  opts.onProgress?.(`ceiling: ${kernel} throughput`);
  let best = 0;
  for (const [wg, groups] of [[64, 64], [64, 1024], [256, 64]] as const) {
    const sink = createBuffer(gpu, wg * groups * 4, `${kernel} sink`);
    const run = async (iters: number): Promise<number> => {
      const d = kernels.prepare(kernel, { constants: { WG: wg }, bind: { sink }, params: { iters, seed: 12345 }, grid: [groups] });
      const op: EncodedOp = { dispatches: 1, encode: (pass) => d.encode(pass) };
      const t = await timeOp(gpu, op, { ...opts.timing, targetPassMs: 0, repeats: 5, warmup: 1 });
      d.destroy();
      return t.ms;
    };
    const probeIters = 16;
    const probe = await run(probeIters);
    const iters = Math.max(probeIters, Math.min(1 << 20, Math.round((probeIters * 40) / Math.max(probe, 1e-3))));
    const ms = await run(iters);
    best = Math.max(best, (bytesPerIter * iters * wg * groups) / (ms * 1e6));
    sink.destroy();
  }
  return best;
}

/** Per-dispatch and per-submission fixed costs, with a near-empty kernel (bench_fma, 0 iterations, 1 workgroup). */
async function measureFixedCosts(gpu: GpuContext, kernels: Kernels, opts: CeilingOptions): Promise<{ dispatch_us: number; submit_ms: number }> {
  opts.onProgress?.('ceiling: fixed cost per dispatch and per submission');
  const sink = createBuffer(gpu, 256, 'bench_fma sink');
  const d = kernels.prepare('bench_fma', { constants: { WG: 64 }, bind: { sink }, params: { iters: 0, seed: 0.5 }, grid: [1] });
  const op: EncodedOp = { dispatches: 1, encode: (pass) => d.encode(pass) };
  try {
    const many = await timeOp(gpu, op, { ...opts.timing, targetPassMs: 1e9, maxInner: 200, repeats: 5, warmup: 1 });
    const one = await timeOp(gpu, op, { ...opts.timing, method: 'wall', targetPassMs: 0, repeats: 9, warmup: 2 });
    return { dispatch_us: many.ms * 1000, submit_ms: one.wallMs };
  } finally {
    sink.destroy();
    d.destroy();
  }
}

async function measureBandwidth(gpu: GpuContext, kernels: Kernels, opts: CeilingOptions) {
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const bytes = Math.floor(Math.min(opts.streamBytes ?? 128 * MiB, limit) / 16) * 16;
  const nVec4 = bytes / 16;
  const src = createBuffer(gpu, bytes, 'bench_stream_read src');
  // all ones: the sum of everything is known exactly (each invocation's partial sum stays below 2^24)
  const ones = new Float32Array(Math.min(nVec4 * 4, 4 * MiB)).fill(1);
  for (let at = 0; at < bytes; at += ones.byteLength) gpu.device.queue.writeBuffer(src, at, ones, 0, Math.min(ones.length, (bytes - at) / 4));
  const grids = opts.full ? [32, 128, 512, 2048, 8192] : [64, 512, 4096];
  const shapes: Array<{ mode: number; wg: number; groups: number }> = [];
  for (const mode of [0, 1]) for (const wg of [64, 256]) for (const groups of grids) shapes.push({ mode, wg, groups });
  const variants: Array<CeilingVariant & { shape: (typeof shapes)[number]; op: EncodedOp; sink: GPUBuffer }> = [];
  const sinks: GPUBuffer[] = [];
  try {
    // screen every variant with 3 samples, then re-measure the best two with 7 and keep the faster
    for (const shape of shapes) {
      const threads = shape.wg * shape.groups;
      if (nVec4 / threads > 1 << 20) continue; // keeps each invocation's f32 sum exact
      opts.onProgress?.(`ceiling: streaming read ${shape.mode ? 'contiguous' : 'grid-stride'} WG ${shape.wg} x ${shape.groups}`);
      const op = streamOp(gpu, kernels, src, nVec4, shape, sinks);
      const t = await timeOp(gpu, op, { ...opts.timing, targetPassMs: 0, repeats: 3, warmup: 1 });
      variants.push({ variant: describe(shape), gbps: bytes / (t.ms * 1e6), ms: t.ms, method: t.method, shape, op, sink: sinks[sinks.length - 1]! });
    }
    const top = [...variants].sort((a, b) => b.gbps! - a.gbps!).slice(0, 2);
    for (const v of top) {
      const t = await timeOp(gpu, v.op, { ...opts.timing, targetPassMs: 0, repeats: 7, warmup: 1 });
      v.gbps = Math.max(v.gbps!, bytes / (t.ms * 1e6));
      if (bytes / (t.ms * 1e6) >= v.gbps) Object.assign(v, { ms: t.ms, method: t.method });
    }
    const best = variants.reduce((a, b) => (b.gbps! > a.gbps! ? b : a));
    // confirm the winner really read every byte
    const threads = best.shape.wg * best.shape.groups;
    const sums = new Float32Array(await readBuffer(gpu, best.sink, 0, threads * 4));
    let total = 0;
    for (const x of sums) total += x;
    const verified = total === nVec4 * 4;
    return {
      best,
      report: { bytes, best: best.variant, verified, method: best.method, variants: variants.map((v) => ({ variant: v.variant, gbps: v.gbps, ms: v.ms, method: v.method })) },
    };
  } finally {
    src.destroy();
    for (const x of sinks) x.destroy();
  }
}

function describe(s: { mode: number; wg: number; groups: number }): string {
  return `${s.mode ? 'contiguous' : 'grid-stride'}, WG ${s.wg} x ${s.groups} workgroups`;
}

function streamOp(gpu: GpuContext, kernels: Kernels, src: GPUBuffer, nVec4: number, s: { mode: number; wg: number; groups: number }, sinks: GPUBuffer[]): EncodedOp {
  const threads = s.wg * s.groups;
  const sink = createBuffer(gpu, threads * 4, 'bench_stream_read sink');
  sinks.push(sink);
  const d = kernels.prepare('bench_stream_read', { constants: { WG: s.wg, MODE: s.mode }, bind: { src, sink }, params: { n_vec4: nVec4, per_thread: Math.ceil(nVec4 / threads) }, grid: [s.groups] });
  return { dispatches: 1, encode: (pass) => d.encode(pass) };
}

async function measureFma(gpu: GpuContext, kernels: Kernels, opts: CeilingOptions) {
  const shapes = (opts.full ? [64, 256] : [64]).flatMap((wg) => (opts.full ? [32, 256, 2048] : [64, 1024]).map((groups) => ({ wg, groups })));
  const variants: CeilingVariant[] = [];
  let flopOfBest = 0;
  for (const s of shapes) {
    opts.onProgress?.(`ceiling: FMA WG ${s.wg} x ${s.groups}`);
    const threads = s.wg * s.groups;
    const sink = createBuffer(gpu, threads * 4, 'bench_fma sink');
    const run = async (iters: number): Promise<Timing> => {
      const d = kernels.prepare('bench_fma', { constants: { WG: s.wg }, bind: { sink }, params: { iters, seed: 0.5 }, grid: [s.groups] });
      const op: EncodedOp = { dispatches: 1, encode: (pass) => d.encode(pass) };
      const t = await timeOp(gpu, op, { ...opts.timing, targetPassMs: 0, repeats: 3, warmup: 1 });
      d.destroy();
      return t;
    };
    // size the loop so one dispatch takes ~40 ms: long enough to hide dispatch overhead
    const probeIters = 64;
    const probe = await run(probeIters);
    const iters = Math.max(probeIters, Math.min(1 << 20, Math.round((probeIters * 40) / Math.max(probe.ms, 1e-3))));
    const t = await run(iters);
    const flop = 64 * iters * threads;
    const gflops = flop / (t.ms * 1e6);
    if (!variants.length || gflops > Math.max(...variants.map((v) => v.gflops!))) flopOfBest = flop;
    variants.push({ variant: `WG ${s.wg} x ${s.groups} workgroups, ${iters} iterations`, gflops, ms: t.ms, method: t.method });
    sink.destroy();
  }
  const best = variants.reduce((a, b) => (b.gflops! > a.gflops! ? b : a));
  return { best, report: { flop: flopOfBest, best: best.variant, method: best.method, variants } };
}
