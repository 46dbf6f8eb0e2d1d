/**
 * The INT4 golden fixture (Kimi K2-Thinking layout: routed experts INT4 pack-quantized, shared experts and every
 * other linear BF16) on the GPU engine, beyond test/engine/session.gpu.test.ts's logits and greedy tokens: every tap
 * against the CPU reference layer by layer (the experts' prefill path: grouped INT4 GEMMs + the BF16 shared expert as
 * its own launch group), and the same logits with the expert stacks split into shards by a 128 KiB binding cap.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readNpy } from '../../src/format/npy.js';
import { createSession } from '../../src/engine/session.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { loadCpuWeights } from '../../src/model/cpu-weights.js';
import { referenceForward } from '../../src/model/reference.js';
import type { TapMap } from '../../src/model/taps.js';
import { compareRows, GOLDEN_DIR } from '../model/reference-fixtures.js';
import { testAdapter, testGpu } from '../helpers/gpu.js';

const dir = GOLDEN_DIR ? join(GOLDEN_DIR, 'int4') : '';

describe.skipIf(!GOLDEN_DIR)(`INT4 golden fixture on the GPU (${testAdapter()})`, () => {
  it('taps match the CPU reference layer by layer (grouped INT4 experts, BF16 shared expert)', async () => {
    const gpu = await testGpu();
    const ckpt = await openCheckpointDir(dir);
    const cpu = await loadCpuWeights(ckpt);
    const s = await createSession(gpu, ckpt, { ctxSize: 64 });
    await ckpt.close();
    const tokens = JSON.parse(readFileSync(join(dir, 'tokens.json'), 'utf8')) as { prompt: number[] };
    const prompt = tokens.prompt.slice(0, 7); // > 4 tokens: the grouped (prefill) expert kernels
    const want: TapMap = new Map();
    referenceForward(cpu, prompt, { taps: want });
    const got: TapMap = new Map();
    await s.forwardLogits(prompt, { taps: got });
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    const report: string[] = [];
    for (const [name, ref] of want) {
      const ours = got.get(name)!;
      expect(ours.shape, name).toEqual(ref.shape);
      if (ref.data instanceof Int32Array) {
        expect(Array.from(ours.data), name).toEqual(Array.from(ref.data));
        continue;
      }
      // f32 GPU vs f64 CPU on the same (exactly decoded) weights: summation order only, ~1e-6 relative
      const r = compareRows(ours.data, ref.data, ref.shape[1]!, 1e-4);
      report.push(`${name} ${r.maxRel.toExponential(1)}`);
      expect(r.failures, name).toEqual([]);
    }
    console.log(`[${testAdapter()}] int4 taps (max relative error): ${report.join(', ')}`);
    s.dispose();
  });

  it('expert stacks split across 128 KiB bindings (4 shards of INT4 experts; the BF16 shared gate_up, 96 KiB, needs one binding) give the fixture logits', async () => {
    const gpu = await testGpu({ maxBindingSizeCap: 128 * 1024 });
    const ckpt = await openCheckpointDir(dir);
    const s = await createSession(gpu, ckpt, { ctxSize: 64 });
    await ckpt.close();
    const tokens = JSON.parse(readFileSync(join(dir, 'tokens.json'), 'utf8')) as { prompt: number[] };
    const npy = readNpy(readFileSync(join(dir, 'logits.npy')), 'int4/logits.npy');
    const V = npy.shape[1]!;
    const T = Math.min(tokens.prompt.length, 8);
    const got = await s.forwardLogits(tokens.prompt.slice(0, T));
    const r = compareRows(got, (npy.data as Float32Array).subarray(0, T * V), V, 2e-3);
    console.log(`[${testAdapter()}] int4 under a 128 KiB binding cap: max |Δ| ${r.maxAbs.toExponential(2)} (relative ${r.maxRel.toExponential(2)})`);
    expect(r.failures).toEqual([]);
    s.dispose();
  });
});
