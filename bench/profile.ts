/**
 * Where a decode step's time goes, without touching the engine:
 *   captureWork   runs one step with the device's command encoders and compute passes wrapped in proxies that
 *                 count queue submissions and record every dispatch (pipeline, bind groups, grid or indirect
 *                 buffer) in order, and (with `timestamp-query`) add begin/end timestamps to each of the step's
 *                 passes: the span is the step's GPU time. The native objects do all the real work; nothing
 *                 the step records changes.
 *   timeSequence  replays the whole recorded sequence in one pass, many times (the step's GPU time where
 *                 timestamps are missing)
 *   profileDispatches  replays each recorded dispatch alone, many times per timed pass (bench/harness.ts), and
 *                 sums the times per kernel (pipeline label) into shares of the step's GPU time. Isolated
 *                 replays of one dependent dispatch can cost more than the same dispatch in the mixed sequence
 *                 (SwiftShader shows it), so read them as shares, scaled to the sequence time.
 * Replaying right after the step sees the same uniform arena contents and buffers, so each dispatch does the
 * work it did in the step. Browser-safe.
 */
import type { GpuContext } from '../src/gpu/device.js';
import { timeOp, type TimingOptions } from './harness.js';
import type { EncodedOp } from './naive.js';

export interface RecordedDispatch {
  pipeline: GPUComputePipeline;
  groups: Array<{ index: number; group: GPUBindGroup | null; offsets?: number[] }>;
  grid?: [number, number, number];
  indirect?: { buffer: GPUBuffer; offset: number };
}

export interface CapturedWork<T> {
  result: T;
  submissions: number;
  dispatches: RecordedDispatch[];
  /** The passes' debug markers (insertDebugMarker) in order, each with the number of dispatches recorded before it. */
  markers: Array<{ marker: string; at: number }>;
  /**
   * GPU time of the work (ms): from timestamps added to each of its compute passes (where the device has
   * `timestamp-query` and the pass had none), the span from the first pass's begin to the last pass's end.
   */
  gpuMs?: number;
  /** Wall time of `fn` alone (ms), before the timestamps are read back. */
  stepWallMs?: number;
}

const MAX_PASSES = 256;

type AnyFn = (...a: unknown[]) => unknown;

function forward<T extends object>(target: T, prop: string | symbol): unknown {
  const v = Reflect.get(target, prop, target) as unknown;
  return typeof v === 'function' ? (v as AnyFn).bind(target) : v;
}

/** Runs `fn`, counting submissions and recording the dispatches it encodes on `gpu` (see the file header). */
export async function captureWork<T>(gpu: GpuContext, fn: () => Promise<T>): Promise<CapturedWork<T>> {
  const device = gpu.device;
  const queue = device.queue;
  const submit = queue.submit;
  const createEncoder = device.createCommandEncoder;
  let submissions = 0;
  const dispatches: RecordedDispatch[] = [];
  const markers: CapturedWork<T>['markers'] = [];
  const querySet = gpu.features.has('timestamp-query') ? device.createQuerySet({ type: 'timestamp', count: 2 * MAX_PASSES, label: 'bench step timestamps' }) : null;
  let passes = 0;
  const withTimestamps = (d?: GPUComputePassDescriptor): GPUComputePassDescriptor | undefined => {
    if (!querySet || d?.timestampWrites || passes >= MAX_PASSES) return d;
    const i = passes++;
    return { ...d, timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } };
  };
  const wrapPass = (pass: GPUComputePassEncoder): GPUComputePassEncoder => {
    let pipeline: GPUComputePipeline | null = null;
    const groups = new Map<number, { group: GPUBindGroup | null; offsets?: number[] }>();
    const state = () => [...groups.entries()].map(([index, g]) => ({ index, ...g }));
    return new Proxy(pass, {
      get(target, prop) {
        switch (prop) {
          case 'setPipeline':
            return (p: GPUComputePipeline) => {
              pipeline = p;
              target.setPipeline(p);
            };
          case 'setBindGroup':
            return (index: number, group: GPUBindGroup | null, offsets?: Iterable<number>) => {
              const list = offsets ? [...offsets] : undefined;
              groups.set(index, { group, offsets: list });
              if (list) target.setBindGroup(index, group, list);
              else target.setBindGroup(index, group);
            };
          case 'dispatchWorkgroups':
            return (x: number, y = 1, z = 1) => {
              if (pipeline) dispatches.push({ pipeline, groups: state(), grid: [x, y, z] });
              target.dispatchWorkgroups(x, y, z);
            };
          case 'insertDebugMarker':
            return (marker: string) => {
              markers.push({ marker, at: dispatches.length });
              target.insertDebugMarker(marker);
            };
          case 'dispatchWorkgroupsIndirect':
            return (buffer: GPUBuffer, offset: number) => {
              if (pipeline) dispatches.push({ pipeline, groups: state(), indirect: { buffer, offset } });
              target.dispatchWorkgroupsIndirect(buffer, offset);
            };
          default:
            return forward(target, prop);
        }
      },
    });
  };
  queue.submit = function (this: GPUQueue, buffers: Iterable<GPUCommandBuffer>) {
    submissions++;
    return submit.call(this, buffers);
  };
  device.createCommandEncoder = function (this: GPUDevice, desc?: GPUCommandEncoderDescriptor) {
    const enc = createEncoder.call(this, desc);
    return new Proxy(enc, {
      get(target, prop) {
        if (prop === 'beginComputePass') return (d?: GPUComputePassDescriptor) => wrapPass(target.beginComputePass(withTimestamps(d)));
        return forward(target, prop);
      },
    });
  };
  try {
    const t0 = performance.now();
    const result = await fn();
    const stepWallMs = performance.now() - t0;
    queue.submit = submit;
    device.createCommandEncoder = createEncoder;
    const out: CapturedWork<T> = { result, submissions, dispatches, markers, stepWallMs };
    if (querySet && passes > 0) out.gpuMs = await passSpanMs(gpu, querySet, passes);
    return out;
  } finally {
    queue.submit = submit;
    device.createCommandEncoder = createEncoder;
    querySet?.destroy();
  }
}

/** First valid begin to last valid end over `passes` timestamp pairs (ms); undefined when none is valid. */
async function passSpanMs(gpu: GpuContext, querySet: GPUQuerySet, passes: number): Promise<number | undefined> {
  const device = gpu.device;
  const bytes = 16 * passes;
  const resolve = device.createBuffer({ size: bytes, usage: 0x0200 | 0x0004, label: 'bench step resolve' }); // QUERY_RESOLVE | COPY_SRC
  const read = device.createBuffer({ size: bytes, usage: 0x0001 | 0x0008, label: 'bench step readback' }); // MAP_READ | COPY_DST
  try {
    const enc = device.createCommandEncoder({ label: 'bench step resolve' });
    enc.resolveQuerySet(querySet, 0, 2 * passes, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, read, 0, bytes);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(0x0001);
    const stamps = new BigUint64Array(read.getMappedRange(0, bytes).slice(0));
    read.unmap();
    let first: bigint | null = null;
    let last: bigint | null = null;
    for (let i = 0; i < passes; i++) {
      const b = stamps[2 * i]!;
      const e = stamps[2 * i + 1]!;
      if (b === 0n || e === 0n || e < b) continue; // rejected pair (docs/kernels.md §3.7)
      if (first === null || b < first) first = b;
      if (last === null || e > last) last = e;
    }
    return first !== null && last !== null && last > first ? Number(last - first) / 1e6 : undefined;
  } finally {
    resolve.destroy();
    read.destroy();
  }
}

/** One recorded dispatch as a repeatable op. */
export function replayOp(d: RecordedDispatch): EncodedOp {
  return {
    dispatches: 1,
    encode(pass) {
      pass.setPipeline(d.pipeline);
      for (const g of d.groups) {
        if (g.offsets) pass.setBindGroup(g.index, g.group, g.offsets);
        else pass.setBindGroup(g.index, g.group);
      }
      if (d.indirect) pass.dispatchWorkgroupsIndirect(d.indirect.buffer, d.indirect.offset);
      else pass.dispatchWorkgroups(...d.grid!);
    },
  };
}

export interface KernelTime {
  /** The pipeline label (the kernel's WGSL file stem). */
  kernel: string;
  dispatches: number;
  /** Sum of the isolated times of its dispatches in one step (ms). */
  ms: number;
  /** ms / Σ ms over all kernels of the step: the kernel's share of the step's GPU time. */
  share: number;
}

/** The whole recorded sequence as one op (every dispatch, in order): the step's GPU work without its host side. */
export function replaySequenceOp(list: RecordedDispatch[]): EncodedOp {
  const ops = list.map(replayOp);
  return { dispatches: list.length, encode: (pass) => ops.forEach((o) => o.encode(pass)) };
}

/** GPU time (ms) of the whole recorded step, replayed as one sequence. */
export async function timeSequence(gpu: GpuContext, list: RecordedDispatch[], timing: Partial<TimingOptions> = {}): Promise<number> {
  return (await timeOp(gpu, replaySequenceOp(list), { repeats: 5, warmup: 1, targetPassMs: 20, maxInner: 32, ...timing })).ms;
}

/** Times every recorded dispatch alone and sums per kernel, largest first. */
export async function profileDispatches(gpu: GpuContext, list: RecordedDispatch[], timing: Partial<TimingOptions> = {}): Promise<KernelTime[]> {
  const byKernel = new Map<string, KernelTime>();
  for (const d of list) {
    const t = await timeOp(gpu, replayOp(d), { repeats: 5, warmup: 1, targetPassMs: 5, maxInner: 64, ...timing });
    const name = d.pipeline.label || 'unlabelled';
    const k = byKernel.get(name) ?? { kernel: name, dispatches: 0, ms: 0, share: 0 };
    k.dispatches++;
    k.ms += t.ms;
    byKernel.set(name, k);
  }
  const total = [...byKernel.values()].reduce((a, k) => a + k.ms, 0);
  for (const k of byKernel.values()) k.share = total > 0 ? k.ms / total : 0;
  return [...byKernel.values()].sort((a, b) => b.ms - a.ms);
}
