/**
 * BF16-linear checkpoints (no quantization_config, as many small DeepSeek-V3-architecture checkpoints ship) on
 * the GPU engine: toy checkpoints written by the toy writer (model/toy.ts) with quantization_config removed, so
 * every linear weight (attention projections, kv_b_proj, dense MLP, experts) is BF16 and runs through the BF16
 * GEMV/GEMM and the `_bf16` instances of the absorb and expert kernel families; compared with the CPU reference on the same file.
 *
 * Tolerances (as the golden fixtures, session.gpu.test.ts):
 *   logits: |gpu − ref| <= 2e-3 · max(1, max |ref|) per position and the same argmax at every position. The
 *     BF16 weights widen exactly on both sides, so only f32 rounding and summation order differ from the f64
 *     reference (measured ~1e-6 relative, printed per config).
 *   greedy generation: identical tokens to the CPU reference session's greedy (cpu-session.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSession, type GpuSession } from '../../src/engine/session.js';
import type { Checkpoint } from '../../src/model/checkpoint.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { toyConfigJson, writeToyCheckpoint, type ToyName } from '../../src/model/toy.js';
import { testAdapter, testGpu } from '../helpers/gpu.js';
import { expectGreedyMatchesCpu, expectLogitsMatchReference } from '../helpers/session-checks.js';

const dirs: string[] = [];
afterAll(async () => {
  (await testGpu()).destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// small: q_lora, 8 groups, R = 64; ragged: q_proj, R = 72, D = 200, F = 72, 2 shared experts
describe.each(['small', 'ragged'] as const)(`GPU engine on a BF16-linear checkpoint (${testAdapter()}): %s`, (name: ToyName) => {
  let ckpt: Checkpoint;
  let s: GpuSession;
  let prompt: number[];
  let V: number;
  beforeAll(async () => {
    const { quantization_config, ...raw } = toyConfigJson(name);
    void quantization_config;
    const dir = mkdtempSync(join(tmpdir(), `webmoe-bf16-${name}-`));
    dirs.push(dir);
    await writeToyCheckpoint(raw, dir, { seed: 5 });
    ckpt = await openCheckpointDir(dir);
    V = ckpt.config.vocab_size;
    prompt = Array.from({ length: 12 }, (_, i) => (i * 53 + 7) % V); // 12 > 4: GEMMs, grouped experts, prefill attention
    s = await createSession(await testGpu(), ckpt, { ctxSize: 64 });
  });
  afterAll(async () => {
    s?.dispose();
    await ckpt?.close();
  });

  it('uploads BF16 as BF16 (no scales, 2 codes per u32)', () => {
    expect(ckpt.config.quantization_config).toBeNull();
    const moeLayer = s.model.weights.layers.find((l) => l.moe)!;
    expect(moeLayer.kvB.format).toBe('bf16');
    expect(moeLayer.kvB.scales).toBeNull();
    expect(moeLayer.o.format).toBe('bf16');
    const shard = moeLayer.moe!.experts.shards[0]!;
    expect(shard.gateUp.format).toBe('bf16');
    expect(moeLayer.moe!.experts.shared!.down.format).toBe('bf16');
    const c = ckpt.config;
    // gate_up stack: 2·E matrices [F, D], rows of roundUp(⌈D/2⌉, 4) words
    expect((shard.gateUp.codes as GPUBuffer).size).toBe(2 * c.n_routed_experts * c.moe_intermediate_size * Math.ceil(Math.ceil(c.hidden_size / 2) / 4) * 16);
  });

  it('logits match the CPU reference within 2e-3 · max(1, max|ref|) at every position, same argmax', async () => {
    await expectLogitsMatchReference(s, ckpt, prompt, 2e-3, `[${testAdapter()}] BF16 ${name}`);
  });

  it('greedy generation equals the CPU reference greedy; a decode step is one submission', async () => {
    await expectGreedyMatchesCpu(s, ckpt, prompt, 6);
  });
});

describe(`GPU engine on a BF16-linear checkpoint under a 128 KiB binding cap (${testAdapter()})`, () => {
  const cap = 128 << 10;
  afterAll(async () => (await testGpu({ maxBindingSizeCap: cap })).destroy());

  it('splits BF16 embed, lm_head, dense weights and expert stacks (one expert per shard) and still matches the CPU reference', async () => {
    const { quantization_config, ...raw } = toyConfigJson('small');
    void quantization_config;
    const dir = mkdtempSync(join(tmpdir(), 'webmoe-bf16-cap-'));
    dirs.push(dir);
    await writeToyCheckpoint(raw, dir, { seed: 6 });
    const ckpt = await openCheckpointDir(dir);
    const s = await createSession(await testGpu({ maxBindingSizeCap: cap }), ckpt, { ctxSize: 64 });
    try {
      const w = s.model.weights;
      expect(w.embed.chunks.length).toBeGreaterThan(1); // 512 x 256 BF16 = 256 KiB
      expect(w.layers[0]!.mlp!.gate.chunks.length).toBeGreaterThan(1); // 512 x 256 BF16 = 256 KiB
      expect(w.layers[1]!.moe!.experts.shards.length).toBe(32); // gate_up of one expert: 2 x 128 x 256 BF16 = 128 KiB
      const V = ckpt.config.vocab_size;
      const prompt = Array.from({ length: 9 }, (_, i) => (i * 29 + 3) % V);
      await expectLogitsMatchReference(s, ckpt, prompt, 2e-3, `[${testAdapter()}] BF16 small, 128 KiB cap`);
    } finally {
      s.dispose();
      await ckpt.close();
    }
  });
});
