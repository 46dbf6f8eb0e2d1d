/**
 * Shape sweep of the GPU engine against the CPU reference: seeded configs around the edges of the shape rules
 * (test/helpers/shape-fuzz.ts: ragged hidden sizes, 1..6 heads, q_proj or q_lora, kv_lora_rank 16..160, group
 * routing, 0..2 shared experts, dense / MoE layer patterns, yarn, FP8 and BF16) written by the toy writer into
 * memory, run through createSession → forwardLogits (prefill in chunks of `chunkSize`, then decode steps through
 * the cache, context sometimes exactly the tokens used), compared with referenceForward on the same tokens.
 *
 *   logits: |gpu − ref| <= 2e-3 · max(1, max |ref|) per position; same argmax where the reference's top-2 margin
 *     exceeds 1e-3; the greedy token of a sampled prefill equals that argmax too.
 *
 * The committed list is small (fast on both adapters); WEBMOE_SHAPES=<n> (and WEBMOE_SHAPES_FROM=<first>) runs
 * seeds first..first+n-1 instead, e.g. `WEBMOE_SHAPES=200 npx vitest run --project lavapipe test/engine/shapes`.
 * A failing case prints its seed and config (describeConfig).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createSession, type GpuSession } from '../../src/engine/session.js';
import { sampleToken } from '../../src/engine/sampler.js';
import { ConfigError, DeviceError } from '../../src/errors.js';
import { mulberry32 } from '../../src/random.js';
import { memoryFiles, openCheckpoint } from '../../src/model/checkpoint.js';
import { loadCpuWeights } from '../../src/model/cpu-weights.js';
import { referenceForward } from '../../src/model/reference.js';
import { makeToyCheckpointInMemory, toyConfigJson } from '../../src/model/toy.js';
import { compareRows } from '../model/reference-fixtures.js';
import { testAdapter, testGpu } from '../helpers/gpu.js';
import { describeConfig, fuzzCase, fuzzConfig, fuzzPrompt, sweepSeeds, type FuzzCase } from '../helpers/shape-fuzz.js';

const GREEDY = { temperature: 0, topK: 0, topP: 1, uniform: 0 };
/** WEBMOE_SHAPES_PRECISION=f16 sweeps the f16-product path (lavapipe): looser bound, argmax checks only report */
const PRECISION: 'f16' | 'f32' = process.env.WEBMOE_SHAPES_PRECISION === 'f16' ? 'f16' : 'f32';
const RTOL = PRECISION === 'f16' ? 2e-2 : 2e-3;
/** the binding caps a case may start from or be raised to (each is one device) */
const CAPS = [4 << 10, 16 << 10, 64 << 10, 256 << 10];
const usedCaps = new Set<number | undefined>([undefined]);

/** Committed seeds: a spread of the fuzzer's draws plus the regressions found by larger sweeps. */
const COMMITTED = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

/** Row-wise argmax and top-2 margin. */
function top2(x: ArrayLike<number>, at: number, V: number): { best: number; margin: number } {
  let best = 0;
  for (let i = 1; i < V; i++) if (x[at + i]! > x[at + best]!) best = i;
  let second = -Infinity;
  for (let i = 0; i < V; i++) if (i !== best && x[at + i]! > second) second = x[at + i]!;
  return { best, margin: x[at + best]! - second };
}

export async function runCase(fc: FuzzCase): Promise<{ maxRel: number; failures: string[] }> {
  const toy = await makeToyCheckpointInMemory(fc.config, { seed: fc.seed, shards: fc.shards });
  const ckpt = await openCheckpoint(memoryFiles(`fuzz-${fc.seed}`, toy.data));
  const c = ckpt.config;
  const V = c.vocab_size;
  const total = fc.promptLength + fc.decodeSteps;
  const tokens = fuzzPrompt(fc.seed, total, V);
  const prompt = tokens.slice(0, fc.promptLength);
  const failures: string[] = [];
  const ref = referenceForward(await loadCpuWeights(ckpt), tokens);
  const ctxSize = fc.exactContext ? total : Math.min(c.max_position_embeddings, total + 9);
  const opts = { ctxSize, chunkSize: fc.chunkSize, moeDecodeMaxTokens: fc.moeDecodeMaxTokens, uniformArenaBytes: fc.arenaBytes, precision: PRECISION };
  // a binding cap below an unsplittable tensor (kv_b_proj, one expert, a cache layer) is a typed DeviceError
  // naming the limit; raise the cap 4x until the session fits (the splittable tensors are still split)
  let cap = fc.bindingCap;
  let s: GpuSession;
  for (;;) {
    try {
      usedCaps.add(cap);
      s = await createSession(await testGpu(cap ? { maxBindingSizeCap: cap } : {}), ckpt, opts);
      break;
    } catch (err) {
      if (!(cap && err instanceof DeviceError && err.details.limit === 'maxStorageBufferBindingSize')) throw err;
      cap = cap >= CAPS[CAPS.length - 1]! ? undefined : cap * 4;
    }
  }
  try {
    const got = new Float32Array(total * V);
    got.set(await s.forwardLogits(prompt, fc.taps ? { taps: new Map() } : {}), 0);
    for (let t = fc.promptLength; t < total; t++) got.set(await s.forwardLogits([tokens[t]!]), t * V);
    const r = compareRows(got, ref, V, RTOL);
    failures.push(...r.failures);
    for (let t = 0; t < total; t++) {
      const want = top2(ref, t * V, V);
      const have = top2(got, t * V, V);
      if (want.margin > 1e-3 && have.best !== want.best) failures.push(`row ${t}: argmax ${have.best} != reference ${want.best} (margin ${want.margin})`);
    }
    // the sampled path (argmax kernel on the last row of a 'last'-logits prefill)
    s.reset();
    const tok = await s.prefill(prompt, GREEDY);
    const want = top2(ref, (fc.promptLength - 1) * V, V);
    if (want.margin > 1e-3 && tok !== want.best) failures.push(`greedy prefill token ${tok} != reference argmax ${want.best}`);
    // the sampling kernel (temperature, top-k, top-p) against the CPU rule on the GPU's own last-row logits
    const rr = mulberry32(fc.seed + 4242);
    for (let i = 0; i < 2; i++) {
      const smp = { temperature: [0.5, 1, 2][i + (fc.seed % 2)]!, topK: [0, 1, 3, 40, V - 1, V + 5][Math.floor(rr() * 6)]!, topP: [1, 0.9, 0.3, 0.999][Math.floor(rr() * 4)]!, uniform: Math.floor(rr() * 2 ** 24) / 2 ** 24 };
      s.reset();
      const tok = await s.prefill(prompt, smp);
      const last = got.subarray((fc.promptLength - 1) * V, fc.promptLength * V);
      // skip draws within 1e-4 of a cumulative-probability boundary (f32 vs f64 sums)
      const near = [-1e-4, 1e-4].some((d) => sampleToken(last, { ...smp, uniform: Math.min(Math.max(smp.uniform + d, 0), 1 - 2 ** -24) }) !== sampleToken(last, smp));
      const want = sampleToken(last, smp);
      if (!near && tok !== want) failures.push(`sampled token ${tok} != CPU rule ${want} (${JSON.stringify(smp)})`);
    }
    return { maxRel: r.maxRel, failures };
  } finally {
    s.dispose();
    await ckpt.close();
  }
}

afterAll(async () => {
  for (const cap of usedCaps) (await testGpu(cap ? { maxBindingSizeCap: cap } : {})).destroy();
});

describe(`GPU engine vs CPU reference on fuzzed shapes (${testAdapter()})`, () => {

  it.each(sweepSeeds(COMMITTED))('seed %i', async (seed) => {
    const fc = fuzzCase(seed);
    const where = `seed ${seed}: ${describeConfig(fc.config)} | prompt ${fc.promptLength} chunk ${fc.chunkSize} decode ${fc.decodeSteps} exactCtx ${fc.exactContext} cap ${fc.bindingCap} moeById ${fc.moeDecodeMaxTokens} arena ${fc.arenaBytes} taps ${fc.taps}`;
    let res: { maxRel: number; failures: string[] };
    try {
      res = await runCase(fc);
    } catch (err) {
      throw new Error(`${where}\n${(err as Error).stack ?? String(err)}`);
    }
    if (process.env.WEBMOE_SHAPES) console.log(`seed ${seed}: max relative ${res.maxRel.toExponential(2)}`);
    if (res.failures.length) console.log(`FAIL ${where}\n  ${res.failures.join('\n  ')}`);
    expect(res.failures, where).toEqual([]);
  });
});

describe(`the bench's named toys vs the CPU reference (${testAdapter()})`, () => {
  // issue #13's Kimi-style toy (`webmoe bench page` times it): a 48-token prompt as the page does, in chunks of 32
  it('kimi-toy', async () => {
    const fc: FuzzCase = { seed: 13, config: toyConfigJson('kimi-toy'), promptLength: 48, chunkSize: 32, decodeSteps: 3, exactContext: false, moeDecodeMaxTokens: 8, taps: false, shards: 1 };
    const res = await runCase(fc);
    expect(res.failures).toEqual([]);
  });
});

describe(`kernel bounds are typed errors at session creation (${testAdapter()})`, () => {
  // one MoE layer of width 16 (tiny weights); each case crosses one bound
  const base = { ...fuzzConfig(1), num_hidden_layers: 1, first_k_dense_replace: 0, hidden_size: 16, moe_intermediate_size: 2, n_shared_experts: 0 };
  it.each([
    [{ n_routed_experts: 520, n_group: 1, topk_group: 1, num_experts_per_tok: 8 }, ConfigError, /n_routed_experts = 520.*at most 512.*MOE_MAX_EXPERTS/],
    [{ n_routed_experts: 64, n_group: 1, topk_group: 1, num_experts_per_tok: 33 }, ConfigError, /num_experts_per_tok = 33.*at most 32.*MOE_MAX_TOPK/],
    [{ n_routed_experts: 256, n_group: 128, topk_group: 4, num_experts_per_tok: 8 }, ConfigError, /n_group = 128.*at most 64.*MOE_MAX_GROUPS/],
    [{ kv_lora_rank: 4100, qk_rope_head_dim: 64, num_attention_heads: 1, num_key_value_heads: 1 }, DeviceError, /kv_lora_rank \+ qk_rope_head_dim = 4164.*workgroup memory/],
  ] as const)('%j', async (patch, type, message) => {
    const toy = await makeToyCheckpointInMemory({ ...base, ...patch }, { seed: 1 });
    const ckpt = await openCheckpoint(memoryFiles('bounds', toy.data));
    let uploaded = 0;
    try {
      await expect(createSession(await testGpu(), ckpt, { ctxSize: 8, onProgress: () => uploaded++ })).rejects.toThrow(type);
      await expect(createSession(await testGpu(), ckpt, { ctxSize: 8 })).rejects.toThrow(message);
      expect(uploaded).toBe(0); // checked before any weight is uploaded
    } finally {
      await ckpt.close();
    }
  });
});

describe(`forwardLogits returns exactly [T, V] (${testAdapter()})`, () => {
  // regression: the readback buffer is padded to 16 bytes, and T·V floats that are not a multiple of 4 came
  // back with extra trailing floats
  it.each([[1, 101], [3, 101], [2, 33]])('T = %i, V = %i', async (T, V) => {
    const cfg = { ...fuzzConfig(1), num_hidden_layers: 1, hidden_size: 16, vocab_size: V };
    const toy = await makeToyCheckpointInMemory(cfg, { seed: 2 });
    const ckpt = await openCheckpoint(memoryFiles('odd-vocab', toy.data));
    const s = await createSession(await testGpu(), ckpt, { ctxSize: 8 });
    try {
      const tokens = fuzzPrompt(T, T, V);
      const got = await s.forwardLogits(tokens);
      expect(got.length).toBe(T * V);
      expect(compareRows(got, referenceForward(await loadCpuWeights(ckpt), tokens), V, RTOL).failures).toEqual([]);
    } finally {
      s.dispose();
      await ckpt.close();
    }
  });
});
