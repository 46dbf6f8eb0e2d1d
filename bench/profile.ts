/**
 * Where a decode step's time goes, without touching the engine:
 *   captureWork   runs one step with the device's command encoders and compute passes wrapped in proxies that
 *                 count queue submissions and record every dispatch (pipeline, bind groups, grid or indirect
 *                 buffer) in order; the native objects do all the real work, nothing recorded changes.
 *   profileSteps  replays each recorded dispatch alone, many times per timed pass (bench/harness.ts), and sums
 *                 the times per kernel (pipeline label). Replaying right after the step sees the same uniform
 *                 arena contents and buffers, so each dispatch does the work it did in the step.
 * The sum of the isolated dispatch times against the measured step time separates kernel time from the host
 * side (encoding, submit, readback, JS). Browser-safe.
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
}

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
        if (prop === 'beginComputePass') return (d?: GPUComputePassDescriptor) => wrapPass(target.beginComputePass(d));
        return forward(target, prop);
      },
    });
  };
  try {
    const result = await fn();
    return { result, submissions, dispatches };
  } finally {
    queue.submit = submit;
    device.createCommandEncoder = createEncoder;
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
}

/** Times every recorded dispatch alone and sums per kernel, largest first. */
export async function profileDispatches(gpu: GpuContext, list: RecordedDispatch[], timing: Partial<TimingOptions> = {}): Promise<KernelTime[]> {
  const byKernel = new Map<string, KernelTime>();
  for (const d of list) {
    const t = await timeOp(gpu, replayOp(d), { repeats: 5, warmup: 1, targetPassMs: 5, maxInner: 64, ...timing });
    const name = d.pipeline.label || 'unlabelled';
    const k = byKernel.get(name) ?? { kernel: name, dispatches: 0, ms: 0 };
    k.dispatches++;
    k.ms += t.ms;
    byKernel.set(name, k);
  }
  return [...byKernel.values()].sort((a, b) => b.ms - a.ms);
}
