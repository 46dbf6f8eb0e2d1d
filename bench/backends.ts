/**
 * The e2e backends of `webmoe bench`: the WebGPU engine and the CPU reference, each with the way to read its
 * own router's decisions for the MoE telemetry. Browser-safe.
 */
import { InputError } from '../src/errors.js';
import type { GpuContext } from '../src/gpu/device.js';
import type { Checkpoint } from '../src/model/checkpoint.js';
import { loadCpuWeights } from '../src/model/cpu-weights.js';
import { ReferenceSession } from '../src/model/reference.js';
import type { TapMap } from '../src/model/taps.js';
import { createCpuSession } from '../src/engine/cpu-session.js';
import { createSession, GpuSession, type SessionOptions } from '../src/engine/session.js';
import type { SessionFactory } from './run.js';

/** CPU reference runs are skipped for checkpoints above this size (f32 weights in JS memory, f64 loops). */
export const CPU_MAX_PARAMS = 50e6;

function paramCount(ckpt: Checkpoint): number {
  let n = 0;
  for (const t of ckpt.tensors.values()) n += t.shape.reduce((a, b) => a * b, 1);
  return n;
}

export function cpuBackend(): SessionFactory {
  return {
    backend: 'cpu-reference',
    async create(ckpt) {
      const n = paramCount(ckpt);
      if (n > CPU_MAX_PARAMS) throw new InputError(`the CPU reference is not run on ${(n / 1e6).toFixed(0)}M parameters (f32 copies and f64 loops; limit ${CPU_MAX_PARAMS / 1e6}M)`);
      return createCpuSession(ckpt);
    },
    // the reference's own routing decisions: one causal forward over the same tokens, read from its taps
    async telemetry(ckpt, _session, tokens, recorder) {
      const taps: TapMap = new Map();
      new ReferenceSession(await loadCpuWeights(ckpt)).prefill(tokens, { taps });
      recorder.addTaps(taps);
    },
  };
}

/** The WebGPU engine (src/engine/session.ts). */
export function webgpuBackend(gpu: GpuContext, opts: SessionOptions = {}): SessionFactory {
  return {
    backend: 'webgpu',
    gpu,
    create: (ckpt) => createSession(gpu, ckpt, opts),
    // the engine's own routing decisions: one forward over the same tokens with taps, which copies the router's
    // ids buffer (layers.{i}.moe.topk_idx) out; normal decode steps never read it back
    async telemetry(_ckpt, session, tokens, recorder) {
      if (!(session instanceof GpuSession)) return;
      const taps: TapMap = new Map();
      session.reset();
      await session.forwardLogits(tokens, { taps });
      session.reset();
      recorder.addTaps(taps);
    },
  };
}
