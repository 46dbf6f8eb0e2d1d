/** `webmoe doctor`: which adapter this machine gives, its features and limits, and a kernel that must run right. */
import { WebmoeError } from '../errors.js';
import { createBuffer, readBuffer } from './buffers.js';
import { planKernels, type KernelPlan } from './plan.js';
import { createGpu, type AdapterChoice, type AdapterDescription, type GpuContext } from './device.js';
import { Kernels } from './kernels.js';

export interface DoctorReport {
  ok: boolean;
  adapter: AdapterDescription;
  features: string[];
  limits: Record<string, number>;
  kernel: { name: string; elements: number; maxError: number };
  /** with a model (`doctor --model`): the kernels the engine would run for it here */
  plan?: KernelPlan;
  error?: string;
}

/** CPU counterpart of fill_sequence.wgsl. */
export function expectedSequence(n: number, a: number, b: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.fround(Math.fround(a * i) + b);
  return out;
}

/** Runs fill_sequence.wgsl on the device and returns the largest difference from the CPU result. */
export async function runFillSequence(gpu: GpuContext, n = 1000, a = 0.5, b = 3): Promise<number> {
  const kernels = new Kernels(gpu);
  const out = createBuffer(gpu, n * 4, 'doctor-out');
  const d = kernels.prepare('fill_sequence', { constants: { WG: 64 }, bind: { out }, params: { n, a, b }, grid: [Math.ceil(n / 64)] });
  const enc = gpu.device.createCommandEncoder({ label: 'doctor' });
  const pass = enc.beginComputePass({ label: 'doctor' });
  d.encode(pass);
  pass.end();
  gpu.device.queue.submit([enc.finish()]);
  const got = new Float32Array(await readBuffer(gpu, out, 0, n * 4));
  const want = expectedSequence(n, a, b);
  let maxError = 0;
  for (let i = 0; i < n; i++) maxError = Math.max(maxError, Math.abs(got[i]! - want[i]!));
  out.destroy();
  d.destroy();
  return maxError;
}

/**
 * Checks the adapter; with `shapes` (a model's hidden size, latent rank and rope width: `webmoe doctor --model`)
 * also reports the kernel plan the engine would run for that model here (gpu/plan.ts).
 */
export async function doctor(adapter?: AdapterChoice, shapes?: { hidden: number; rank: number; rope: number }): Promise<DoctorReport> {
  const gpu = await createGpu({ adapter });
  try {
    const n = 1000;
    const maxError = await runFillSequence(gpu, n);
    const ok = maxError === 0;
    return {
      ok,
      ...(shapes ? { plan: planKernels(new Kernels(gpu), shapes) } : {}),
      adapter: gpu.info,
      features: [...gpu.adapter.features].sort(),
      limits: { ...gpu.limits },
      kernel: { name: 'fill_sequence', elements: n, maxError },
      ...(ok ? {} : { error: `kernel fill_sequence returned wrong numbers (max error ${maxError})` }),
    };
  } finally {
    gpu.destroy();
  }
}

export class DoctorError extends WebmoeError {
  constructor(message: string) {
    super('DOCTOR', message);
  }
}
