/**
 * Expert offloading (engine/expert-offload.ts) as a specification: under any budget that holds the resident part
 * plus K slots per MoE layer, the logits and greedy tokens are bit-identical to the all-resident session (S1 of
 * issue #16), because every row runs the same kernel on the same data in the same order; only where the bytes
 * live differs.
 *
 * Budgets are a share of the routed experts' bytes on top of the resident part: 100 % (every expert fits: the
 * one-submission path over slots), 50 % and 25 % (streaming, waves when a chunk's experts outnumber the slots).
 * The prompt runs as one prefill chunk (> 4 tokens: grouped experts, expert-set waves) and as single-token steps
 * (experts by id); a chunk of 3 tokens takes the by-id kernels over token-range waves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../../src/errors.js';
import { createSession, type GpuSession, type SessionOptions } from '../../src/engine/session.js';
import { offloadFixedBytes, slotBytes } from '../../src/engine/expert-offload.js';
import type { Checkpoint } from '../../src/model/checkpoint.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { checkpointExpertSource } from '../../src/offload/expert-source.js';
import { goldenCases, GOLDEN_DIR } from '../model/reference-fixtures.js';
import { testAdapter, testGpu } from '../helpers/gpu.js';

const GREEDY = { temperature: 0, topK: 0, topP: 1, uniform: 0 };
const CTX = 96;

function words(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

/** Bit equality of two logit arrays, reporting the first differing index. */
function expectBitIdentical(got: Float32Array, want: Float32Array): void {
  expect(got.length).toBe(want.length);
  const a = words(got);
  const b = words(want);
  let first = -1;
  for (let i = 0; i < a.length && first < 0; i++) if (a[i] !== b[i]) first = i;
  expect(first, first >= 0 ? `first difference at ${first}: ${got[first]} vs ${want[first]}` : '').toBe(-1);
}

/** The budget that leaves `share` of every MoE layer's routed experts resident (at least K slots). */
function budgetFor(ckpt: Checkpoint, resident: GpuSession, share: number, maxBinding: number): { bytes: number; slots: number } {
  const c = ckpt.config;
  const shape = checkpointExpertSource(ckpt).shape;
  const layers = c.derived.moeLayers.filter(Boolean).length;
  const allSlots = layers * slotBytes(shape, c, c.n_routed_experts, maxBinding);
  // the all-resident session holds the same expert stacks as E slots: the rest is the resident part
  const fixed = resident.gpuBytes() - allSlots + offloadFixedBytes(c, resident.chunk);
  const slots = Math.max(c.num_experts_per_tok, Math.floor(share * c.n_routed_experts));
  return { bytes: fixed + layers * slotBytes(shape, c, slots, maxBinding), slots };
}

const moeCases = goldenCases().filter((name) => {
  const cfg = JSON.parse(readFileSync(join(GOLDEN_DIR!, name, 'config.json'), 'utf8')) as { n_routed_experts?: number; text_config?: unknown };
  return (cfg.n_routed_experts ?? 0) > 0;
});

afterAll(async () => (await testGpu()).destroy());

describe(`expert offloading is exact (${testAdapter()})`, () => {
  describe.each(moeCases)('%s', (name) => {
    let ckpt: Checkpoint;
    let resident: GpuSession;
    let prompt: number[];
    let want: { prefill: Float32Array; steps: Float32Array[]; greedy: number[]; short: Float32Array };
    const opts: SessionOptions = { ctxSize: CTX };

    beforeAll(async () => {
      const gpu = await testGpu();
      ckpt = await openCheckpointDir(join(GOLDEN_DIR!, name));
      prompt = (JSON.parse(readFileSync(join(GOLDEN_DIR!, name, 'tokens.json'), 'utf8')) as { prompt: number[] }).prompt.slice(0, 24);
      resident = await createSession(gpu, ckpt, opts);
      want = await run(resident, prompt);
    });
    afterAll(async () => {
      resident?.dispose();
      await ckpt?.close();
    });

    /** Prefill logits, 4 decode steps' logits, a greedy continuation and a 3-token chunk (by-id path). */
    async function run(s: GpuSession, p: number[]): Promise<{ prefill: Float32Array; steps: Float32Array[]; greedy: number[]; short: Float32Array }> {
      s.reset();
      const prefill = await s.forwardLogits(p);
      const steps: Float32Array[] = [];
      for (const t of [3, 1, 4, 1]) steps.push(await s.forwardLogits([t % s.vocabSize]));
      s.reset();
      const greedy = [await s.prefill(p, GREEDY)];
      while (greedy.length < 8) greedy.push(await s.decode(greedy[greedy.length - 1]!, GREEDY));
      s.reset();
      await s.forwardLogits(p.slice(0, 5));
      const short = await s.forwardLogits(p.slice(5, 8));
      return { prefill, steps, greedy, short };
    }

    it.each([1, 0.5, 0.25])('budget with %s of the expert bytes: identical logits and tokens', async (share) => {
      const gpu = await testGpu();
      const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
      const budget = budgetFor(ckpt, resident, share, limit);
      const s = await createSession(gpu, ckpt, { ...opts, offload: { gpuMemory: budget.bytes } });
      try {
        expect(s.offload!.slots).toBe(Math.min(budget.slots, ckpt.config.n_routed_experts));
        expect(s.offload!.streaming).toBe(share < 1);
        expect(s.gpuBytes()).toBeLessThanOrEqual(budget.bytes);
        const got = await run(s, prompt);
        expectBitIdentical(got.prefill, want.prefill);
        got.steps.forEach((x, i) => expectBitIdentical(x, want.steps[i]!));
        expect(got.greedy).toEqual(want.greedy);
        expectBitIdentical(got.short, want.short);
        const st = s.offload!.stats();
        if (share < 1) {
          expect(st.misses).toBeGreaterThan(0); // the budget really streamed experts
          // whole experts cross the link; every miss was uploaded (prefetches may add more)
          expect(st.bytesStreamed % st.expertBytes).toBe(0);
          expect(st.bytesStreamed).toBeGreaterThanOrEqual(st.misses * st.expertBytes);
        }
        console.log(`[${testAdapter()}] ${name} ${share * 100}%: S ${st.slotsPerLayer}/${st.experts}, hit rate ${st.hitRate.toFixed(3)}, misses ${st.misses}, streamed ${(st.bytesStreamed / 1024).toFixed(0)} KiB`);
      } finally {
        s.dispose();
      }
    });

    it('streaming mode with every expert resident equals the one-submission path', async () => {
      const s = await createSession(await testGpu(), ckpt, { ...opts, offload: { gpuMemory: 2 ** 40, streaming: true } });
      try {
        expect(s.offload!.streaming).toBe(true);
        expect(s.offload!.slots).toBe(ckpt.config.n_routed_experts);
        const got = await run(s, prompt);
        expectBitIdentical(got.prefill, want.prefill);
        expect(got.greedy).toEqual(want.greedy);
        expect(s.offload!.stats().misses).toBe(0);
      } finally {
        s.dispose();
      }
    });
  });

  it('a budget below the resident part plus K slots per layer is a typed error naming the minimum', async () => {
    const ckpt = await openCheckpointDir(join(GOLDEN_DIR!, 'small'));
    try {
      const err = await createSession(await testGpu(), ckpt, { ctxSize: CTX, offload: { gpuMemory: 1 << 20 } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).field).toBe('gpuMemory');
      expect((err as Error).message).toMatch(/below this model's minimum of [\d.]+ MiB/);
    } finally {
      await ckpt.close();
    }
  });
});
