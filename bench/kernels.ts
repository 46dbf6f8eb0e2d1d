/**
 * `webmoe bench kernels`: the ceilings, then every selected shape with its naive and optimised variants, as
 * report rows (bench/schema.ts). Runs the same in Node and in the browser Bench page (web/bench.ts).
 */
import type { GpuContext } from '../src/gpu/device.js';
import { Kernels } from '../src/gpu/kernels.js';
import { measureCeilings, mergeCeilings, type Ceilings } from './ceilings.js';
import { benchShapes, BufferPool, type BenchShape } from './cases.js';
import { DEFAULT_TIMING, timeInterleaved, type Timing, type TimingOptions } from './harness.js';
import type { EncodedOp } from './naive.js';
import { clamp01, type AdapterRecord, type KernelRow, type TargetCheck } from './schema.js';
import { kernelTargets } from './targets.js';

export interface KernelBenchOptions {
  /** Every shape (else the default tier). */
  full?: boolean;
  /** Only shapes whose "kernel shape" text contains one of these (case-insensitive). */
  only?: string[];
  /** Skip the naive twins (faster, but no speedups). */
  skipNaive?: boolean;
  timing?: Partial<TimingOptions>;
  /** Called before each step: done of total, and what runs next. */
  onProgress?: (done: number, total: number, label: string) => void;
  /** Bytes streamed by the bandwidth ceiling (default 128 MiB, capped by the device). */
  streamBytes?: number;
}

export interface KernelBenchResult {
  ceilings: Ceilings;
  kernels: KernelRow[];
  skipped: Array<{ kernel: string; shape: string; variant?: string; reason: string }>;
  targets: TargetCheck[];
}

export function selectShapes(opts: Pick<KernelBenchOptions, 'full' | 'only'>): BenchShape[] {
  const only = opts.only?.map((s) => s.toLowerCase()).filter(Boolean);
  return benchShapes().filter((s) => (opts.full || s.tier === 'default') && (!only?.length || only.some((o) => `${s.kernel} ${s.shape}`.toLowerCase().includes(o))));
}

export function adapterRecord(gpu: GpuContext, runtime: 'node' | 'browser'): AdapterRecord {
  const i = gpu.info;
  const rec: AdapterRecord = {
    vendor: i.vendor,
    architecture: i.architecture,
    device: i.device,
    description: i.description,
    software: i.software,
    driver: i.driver,
    features: [...gpu.features].sort(),
    limits: { ...gpu.limits },
    runtime,
  };
  if (i.subgroupMinSize !== undefined) rec.subgroupMinSize = i.subgroupMinSize;
  if (i.subgroupMaxSize !== undefined) rec.subgroupMaxSize = i.subgroupMaxSize;
  if (runtime === 'browser' && typeof navigator !== 'undefined') rec.userAgent = navigator.userAgent;
  return rec;
}

/** A report row from a timing (fractions clamped to [0, 1], raw ratios kept). */
export function kernelRow(
  base: { kernel: string; variant: 'naive' | 'optimised'; impl: string; shape: string; dims: Record<string, number>; bytes: number; flops: number },
  t: Timing,
  ceilings: Pick<Ceilings, 'bandwidth_gbps' | 'fma_gflops'>,
): KernelRow {
  const gbps = base.bytes / (t.ms * 1e6);
  const gflops = base.flops / (t.ms * 1e6);
  const rawB = gbps / ceilings.bandwidth_gbps;
  const rawF = gflops / ceilings.fma_gflops;
  const row: KernelRow = {
    ...base,
    time_ms: t.ms,
    min_ms: t.minMs,
    max_ms: t.maxMs,
    wall_ms: t.wallMs,
    gbps,
    gflops,
    fraction_of_bandwidth: clamp01(rawB),
    fraction_of_fma: clamp01(rawF),
    raw_fraction_of_bandwidth: rawB,
    raw_fraction_of_fma: rawF,
    method: t.method,
    timer: t.timer,
    inner: t.inner,
    samples: t.samples,
  };
  if (t.resolutionNs !== undefined) row.resolution_ns = t.resolutionNs;
  return row;
}

/**
 * Builds an op and encodes it once into a command buffer that is never submitted, inside a validation error
 * scope: launchers that create pipelines lazily (at encode time) fail here, as this variant's skip reason,
 * instead of as an uncaptured error that would stop the whole run.
 */
async function buildChecked(gpu: GpuContext, build: () => EncodedOp): Promise<EncodedOp> {
  gpu.device.pushErrorScope('validation');
  let op: EncodedOp | undefined;
  let thrown: unknown;
  try {
    op = build();
    const enc = gpu.device.createCommandEncoder({ label: 'bench dry run' });
    const pass = enc.beginComputePass();
    op.prepare?.();
    op.encode(pass);
    pass.end();
    op.finish?.();
    enc.finish();
  } catch (err) {
    thrown = err;
  }
  const err = await gpu.device.popErrorScope();
  if (thrown) throw thrown;
  if (err) throw new Error(`validation: ${err.message.split('\n')[0]}`);
  return op!;
}

export async function runKernelBench(gpu: GpuContext, opts: KernelBenchOptions = {}): Promise<KernelBenchResult> {
  const kernels = new Kernels(gpu);
  const timing = { ...DEFAULT_TIMING, ...opts.timing };
  const shapes = selectShapes(opts);
  const total = shapes.length + 2;
  const ceilingOpts = { full: opts.full, timing: { method: timing.method }, streamBytes: opts.streamBytes };
  opts.onProgress?.(0, total, 'ceilings: streaming read and FMA');
  const before = await measureCeilings(gpu, kernels, ceilingOpts);
  const timed: Array<{ base: Parameters<typeof kernelRow>[0]; t: Timing; engineDefault?: boolean; naiveMs?: number; format?: 'fp8' | 'int4' }> = [];
  const skipped: KernelBenchResult['skipped'] = [];
  for (const [i, shape] of shapes.entries()) {
    opts.onProgress?.(i + 1, total, `${shape.kernel} ${shape.shape}`);
    const pool = new BufferPool(gpu);
    try {
      let variants;
      try {
        variants = shape.prepare({ gpu, kernels }, pool);
      } catch (err) {
        skipped.push({ kernel: shape.kernel, shape: shape.shape, reason: (err as Error).message });
        continue;
      }
      // build every variant of the shape, then time them with interleaved samples (same load for each)
      const built: Array<{ v: (typeof variants)[number]; op: EncodedOp }> = [];
      for (const v of variants) {
        if (opts.skipNaive && v.variant === 'naive') continue;
        try {
          built.push({ v, op: await buildChecked(gpu, v.build) });
        } catch (err) {
          skipped.push({ kernel: shape.kernel, shape: shape.shape, variant: `${v.variant} ${v.impl}`, reason: (err as Error).message });
          gpu.check();
        }
      }
      const results = await timeInterleaved(gpu, built.map((b) => b.op), timing);
      const naive = results.find((r, j) => built[j]!.v.variant === 'naive' && !(r instanceof Error)) as Timing | undefined;
      built.forEach(({ v }, j) => {
        const t = results[j]!;
        if (t instanceof Error) {
          skipped.push({ kernel: shape.kernel, shape: shape.shape, variant: `${v.variant} ${v.impl}`, reason: t.message });
          return;
        }
        const base = { kernel: shape.kernel, variant: v.variant, impl: v.impl, shape: shape.shape, dims: shape.dims, bytes: v.bytes ?? shape.bytes, flops: shape.flops };
        timed.push({ base, t, engineDefault: v.engineDefault, naiveMs: v.variant === 'naive' ? undefined : naive?.ms, format: v.format });
      });
    } finally {
      await gpu.device.queue.onSubmittedWorkDone();
      pool.destroy();
    }
  }
  // the ceilings again: on a shared machine the better of the two is what the device can do (drift is kept)
  opts.onProgress?.(total - 1, total, 'ceilings again (drift check)');
  const ceilings = mergeCeilings(before, await measureCeilings(gpu, kernels, ceilingOpts));
  const rows = timed.map(({ base, t, engineDefault, naiveMs, format }) => {
    const row = kernelRow(base, t, ceilings);
    if (engineDefault) row.engine_default = true;
    if (format) {
      // the fraction of this format's decode ceiling (codes decoded into FMAs from registers, no memory)
      const cap = (format === 'int4' ? ceilings.int4_decode_gbps : ceilings.fp8_decode_gbps) ?? 0;
      row.weight_format = format;
      if (cap > 0) row.fraction_of_decode_ceiling = row.gbps / cap;
    }
    if (naiveMs !== undefined) row.speedup_vs_naive = naiveMs / t.ms;
    return row;
  });
  opts.onProgress?.(total, total, 'done');
  const targets = kernelTargets(rows, ceilings);
  return { ceilings, kernels: rows, skipped, targets };
}
