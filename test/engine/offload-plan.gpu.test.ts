/**
 * `inspect --gpu-memory`'s plan (engine/offload-plan.ts) against what a session really allocates: the resident part
 * it estimates from the config alone must be within 5 % of the session's own count (weights without routed
 * experts, KV cache, activations, scratch and offload buffers), and the slots it predicts for a budget must be
 * within one of the engine's.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createSession } from '../../src/engine/session.js';
import { offloadFixedBytes, slotBytes } from '../../src/engine/expert-offload.js';
import { planOffload } from '../../src/engine/offload-plan.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { checkpointExpertSource } from '../../src/offload/expert-source.js';
import { GOLDEN_DIR } from '../model/reference-fixtures.js';
import { testAdapter, testGpu } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

describe(`offload plan vs the engine (${testAdapter()})`, () => {
  it.each(['small', 'int4', 'ragged'])('%s: resident part within 5 %, slots within one', async (name) => {
    const gpu = await testGpu();
    const ckpt = await openCheckpointDir(join(GOLDEN_DIR!, name));
    try {
      const c = ckpt.config;
      const ctx = 200;
      const maxBinding = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
      const shape = checkpointExpertSource(ckpt).shape;
      const layers = c.derived.moeLayers.filter(Boolean).length;
      const s = await createSession(gpu, ckpt, { ctxSize: ctx });
      const fixed = s.gpuBytes() - layers * slotBytes(shape, c, c.n_routed_experts, maxBinding) + offloadFixedBytes(c, s.chunk);
      s.dispose();
      const budget = fixed + layers * slotBytes(shape, c, Math.floor(c.n_routed_experts / 2), maxBinding);
      const plan = planOffload(c, { gpuMemory: budget, ctxSize: ctx, format: shape.format, maxBinding });
      console.log(`[${testAdapter()}] ${name}: plan resident ${plan.fixed} vs session ${fixed} (${((plan.fixed / fixed - 1) * 100).toFixed(2)} %), slots ${plan.slotsPerLayer} vs ${Math.floor(c.n_routed_experts / 2)}`);
      expect(Math.abs(plan.fixed / fixed - 1)).toBeLessThan(0.05);
      expect(Math.abs(plan.slotsPerLayer - Math.floor(c.n_routed_experts / 2))).toBeLessThanOrEqual(1);
      const o = await createSession(gpu, ckpt, { ctxSize: ctx, offload: { gpuMemory: budget } });
      try {
        expect(o.offload!.slots).toBe(Math.floor(c.n_routed_experts / 2));
      } finally {
        o.dispose();
      }
    } finally {
      await ckpt.close();
    }
  });
});
